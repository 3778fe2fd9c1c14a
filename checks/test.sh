#!/usr/bin/env bash
# Local test runner for gather checks (not a check itself; never bundled).
# Runs every checks/{abuse,analytics}/run-xyz the way the agent does (common +
# "\n" + check on fd 3, scrubbed env, stdin /dev/null), validates the
# output against the contract with validate.mjs and prints the time taken.
#   bash checks/test.sh            # all checks
#   bash checks/test.sh -v         # also print each check's output
#   bash checks/test.sh abuse/run-qzt
set -u
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
verbose=0
[ "${1:-}" = "-v" ] && { verbose=1; shift; }
if [ $# -gt 0 ]; then
  checks=("$@")
else
  checks=()
  for f in "$here"/abuse/run-[a-z][a-z][a-z] "$here"/analytics/run-[a-z][a-z][a-z]; do
    [ -f "$f" ] && checks+=("${f#"$here"/}")
  done
fi
fail=0
out="$(mktemp)"; err="$(mktemp)"
trap 'rm -f "$out" "$err"' EXIT
# run_check LABEL FILE CATEGORY ID: runs common + FILE as the agent does (script on fd 3, scrubbed env,
# stdin /dev/null), validates its output and prints one line.
run_check() {
  local label=$1 file=$2 start rc ms verdict
  start=$(date +%s%N)
  env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/root LANG="${LANG:-C.UTF-8}" TERM=dumb \
    GATHER_CATEGORY="$3" GATHER_CHECK="$4" timeout 60 bash /dev/fd/3 \
    3< <(cat "$here/common"; printf '\n'; cat "$file") >"$out" 2>"$err" </dev/null
  rc=$?
  ms=$(( ($(date +%s%N) - start) / 1000000 ))
  verdict="$(node "$here/validate.mjs" < "$out")" || fail=1
  [ "$rc" -ne 0 ] && { verdict="$verdict (exit $rc)"; fail=1; }
  printf '%-18s %6d ms  %s\n' "$label" "$ms" "$verdict"
  if [ "$verbose" -eq 1 ]; then cat "$out"; [ -s "$err" ] && sed 's/^/  stderr: /' "$err"; fi
}

for c in "${checks[@]}"; do
  run_check "$c" "$here/$c" "${c%%/*}" "${c##*/run-}"
done

# Original-gather-style checks (Koding's gather, 2015): no shebang, bare
# helper calls, constants $BOOLEAN/$NUMBER, backticks, `exit` inside a
# function after the first hit. They must run unchanged against our common.
compat_dir="$(mktemp -d)"
trap 'rm -f "$out" "$err"; rm -rf "$compat_dir"' EXIT
cat > "$compat_dir/run-aaa" <<'CHECK'
installed "mysql installed" mysql
CHECK
cat > "$compat_dir/run-aab" <<'CHECK'
output "zshrc line count" $NUMBER `number_of_lines ~/.zshrc`
CHECK
cat > "$compat_dir/run-aac" <<'CHECK'
COUNT=`grep -c ':/home/' /etc/passwd | tr -d ' '`
output "user count" $NUMBER $COUNT
CHECK
cat > "$compat_dir/run-aad" <<'CHECK'
FOUND=false
if [ -d "/usr/share/elasticsearch" ]; then
  FOUND=true
fi

output "elasticsearch installed" $BOOLEAN $FOUND
CHECK
cat > "$compat_dir/run-aae" <<'CHECK'
function found() {
  COUNT=`grep -r "$1" /etc/hostname 2> /dev/null | wc -l`

  if [ $COUNT -gt 0 ]
  then
    output "$2" $BOOLEAN 1
    exit
  fi
}

found 'zz-no-such-marker-zz' 'abuse: nothing'
found '' 'abuse: empty pattern matches everything'
found 'zz-never-reached' 'abuse: unreachable'
CHECK
cat > "$compat_dir/run-aaf" <<'CHECK'
output "git repos" $NUMBER `list_git_repos | wc -l`
output "file types" $NUMBER `list_file_types | wc -l`
output "users" $NUMBER `list_users | wc -l`
installed_metric "bash installed" bash
CHECK
for f in "$compat_dir"/run-*; do
  run_check "compat/${f##*/}" "$f" analytics "${f##*/run-}"
done
exit "$fail"
