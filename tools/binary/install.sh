#!/bin/sh
# Installs gather-agent from this release tarball: the binary, the systemd unit and /etc/gather.
# Never overwrites an existing configuration or key; re-running it upgrades the binary and the unit.
#
# usage: ./install.sh [--destdir DIR] [--prefix DIR] [--public-key FILE]
#   --destdir DIR      install under DIR instead of / (packaging, tests); nothing is started
#   --prefix DIR       where the binary goes: PREFIX/bin/gather-agent (default /usr/local)
#   --public-key FILE  the public half of CI's signing key, installed as /etc/gather/signing.pub.pem
#                      unless that file exists
set -eu

usage() { sed -n '2,10s/^# \{0,1\}//p' "$0"; }
destdir='' prefix=/usr/local public_key=''
while [ $# -gt 0 ]; do
  case $1 in
    --destdir) [ $# -ge 2 ] || { echo "install.sh: --destdir needs a directory" >&2; exit 2; }; destdir=$2; shift 2 ;;
    --prefix) [ $# -ge 2 ] || { echo "install.sh: --prefix needs a directory" >&2; exit 2; }; prefix=$2; shift 2 ;;
    --public-key) [ $# -ge 2 ] || { echo "install.sh: --public-key needs a file" >&2; exit 2; }; public_key=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install.sh: unknown option $1 (see ./install.sh --help)" >&2; exit 2 ;;
  esac
done
case $prefix in /*) ;; *) echo "install.sh: --prefix must be absolute, got $prefix" >&2; exit 2 ;; esac
if [ -n "$destdir" ]; then
  mkdir -p "$destdir" && destdir=$(cd "$destdir" && pwd)
elif [ "$(id -u)" != 0 ]; then
  echo "install.sh: run it as root (or with --destdir DIR to install into a directory)" >&2
  exit 2
fi
if [ -n "$public_key" ] && [ ! -r "$public_key" ]; then
  echo "install.sh: cannot read the public key $public_key" >&2
  exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
# root:root when run as root; a non-root --destdir install (packaging) keeps the caller's owner.
owner=''
[ "$(id -u)" = 0 ] && owner='-o 0 -g 0'

# The binary, replaced atomically (a running daemon keeps its old inode).
# shellcheck disable=SC2086
install -d -m 0755 $owner "$destdir$prefix/bin"
# shellcheck disable=SC2086
install -m 0755 $owner "$here/gather-agent" "$destdir$prefix/bin/.gather-agent.new"
mv -f "$destdir$prefix/bin/.gather-agent.new" "$destdir$prefix/bin/gather-agent"

# The unit, pointed at the binary just installed.
# shellcheck disable=SC2086
install -d -m 0755 $owner "$destdir/etc/systemd/system"
sed "s|/usr/bin/gather-agent|$prefix/bin/gather-agent|g" "$here/gather-agent.service" > "$destdir/etc/systemd/system/.gather-agent.service.new"
# shellcheck disable=SC2086
install -m 0644 $owner "$destdir/etc/systemd/system/.gather-agent.service.new" "$destdir/etc/systemd/system/gather-agent.service"
rm -f "$destdir/etc/systemd/system/.gather-agent.service.new"

# /etc/gather: readable directory, the configuration and secrets readable by root only.
# shellcheck disable=SC2086
install -d -m 0755 $owner "$destdir/etc/gather"
etc="$destdir/etc/gather"
kept=''
# install_new MODE FILE: stdin to FILE unless FILE exists.
install_new() {
  if [ -e "$2" ] || [ -L "$2" ]; then
    kept="$kept ${2#"$destdir"}"
    cat >/dev/null
    return 0
  fi
  (umask 077 && cat > "$2.new")
  # shellcheck disable=SC2086
  chmod "$1" "$2.new" && { [ -z "$owner" ] || chown 0:0 "$2.new"; } && mv "$2.new" "$2"
}
install_new 0600 "$etc/agent.json" <<'JSON'
{
  "bundle": "s3://CHANGE-ME-bucket/prod",
  "publicKey": "/etc/gather/signing.pub.pem",
  "exporter": "elasticsearch",
  "elasticsearch": { "url": "https://CHANGE-ME.example.com:9200", "apiKeyFile": "/etc/gather/es-api-key" },
  "s3": { "region": "eu-west-1" }
}
JSON
install_new 0600 "$etc/agent.env" <<'ENV'
# GATHER_* variables for the daemon (read by the systemd unit), e.g.
# GATHER_INSTANCE_ID=i-0123456789
ENV
if [ -n "$public_key" ]; then install_new 0644 "$etc/signing.pub.pem" < "$public_key"; fi
# shellcheck disable=SC2086
install -d -m 0700 $owner "$destdir/var/lib/gather" "$destdir/var/spool/gather"

echo "installed $prefix/bin/gather-agent ($("$destdir$prefix/bin/gather-agent" version 2>/dev/null || echo '?')), /etc/systemd/system/gather-agent.service, /etc/gather${destdir:+ under $destdir}"
[ -z "$kept" ] || echo "kept as they were:$kept"
if [ -z "$destdir" ] && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
cat <<NEXT
next: edit /etc/gather/agent.json (bundle, Elasticsearch), put the API key in /etc/gather/es-api-key (mode 0600)
      and the signing key in /etc/gather/signing.pub.pem, then
      gather-agent run --dry-run && systemctl enable --now gather-agent
NEXT
