/**
 * Global setup of every package's tests: one temp dir per test run, made the process's TMPDIR before any
 * worker starts, so every `mkdtemp(join(tmpdir(), …))` of the tests (and of the agents and checks they run)
 * lands below it, and removed when the run ends, passed or failed. Without it each run of the suites left
 * ~2,000 `gather-*` dirs in /tmp. Root's and 0755: trusted by root-trust checks as /tmp is, and open to the
 * other users some tests run as.
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export default function setup(): () => void {
  const previous = process.env.TMPDIR;
  const dir = mkdtempSync(join(tmpdir(), 'gather-vitest-'));
  chmodSync(dir, 0o755);
  process.env.TMPDIR = dir;
  return () => {
    if (previous === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = previous;
    // A mount left below (a test's private mount namespace is gone with it; a leaked bind mount is not)
    // would be deleted through: left alone, and said.
    const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((line) => line.split(' ')[4] ?? '')
      .filter((point) => point === dir || point.startsWith(`${dir}/`));
    if (mounts.length > 0) {
      process.stderr.write(`vitest-temp: ${dir} is left in place: mounts below it (${mounts.join(', ')})\n`);
      return;
    }
    rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  };
}
