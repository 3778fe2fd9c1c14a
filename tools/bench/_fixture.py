"""Shared by tools/bench/startup and tools/bench/rss: a signed bundle of one trivial check, made with the
bundler of this checkout, and the ways to run the agent (the npm bin as users run it; the single binary)."""
import os
import subprocess
import tempfile

root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
bundle_cli = os.path.join(root, "packages/checks-bundler/bin/gather-bundle.js")
agent_bin = os.path.join(root, "packages/agent/bin/gather-agent.js")
binary = os.path.join(root, "dist/binary/gather-agent-linux-x64")


def one_check_bundle():
    """Returns (work dir, bundle path, public key path)."""
    if not os.path.exists(os.path.join(root, "packages/agent/dist/cli.js")):
        raise SystemExit("bench: build first: pnpm build")
    work = tempfile.mkdtemp(prefix="gather-bench-")
    checks = os.path.join(work, "checks")
    os.makedirs(os.path.join(checks, "abuse"))
    with open(os.path.join(checks, "common"), "w") as f:
        f.write("")
    with open(os.path.join(checks, "abuse", "run-one"), "w") as f:
        f.write('echo \'{"name":"bench.one","type":"number","value":1}\'\n')
    key, pub, bundle = (os.path.join(work, n) for n in ("key.pem", "key.pub.pem", "one.tar"))
    for args in (["keygen", "--out-private", key, "--out-public", pub], ["build", "--checks", checks, "--out", bundle, "--key", key]):
        subprocess.run(["node", bundle_cli, *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return work, bundle, pub


def read_from_disk(path):
    """Drops the file's pages from the page cache, so the next runs read it as a VM does after install or boot.

    A file just written in one large write (`node --build-sea`, strip) sits in the page cache in large folios
    (ext4 on Linux 6.x), and every page fault then maps a whole folio: the same 114 MiB binary peaks ~30 MB
    higher (its text and read-only data) than once its pages come back from disk by readahead. Measuring the
    binary as the build left it would count that artefact of having just built it."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def agents():
    """(name, argv prefix) of every agent build present: the npm bin (its shebang flags apply) and the binary."""
    found = [("agent", [agent_bin])]
    if os.path.exists(binary):
        read_from_disk(binary)
        found.append(("binary", [binary]))
    return found
