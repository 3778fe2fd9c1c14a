import { afterEach, describe, expect, it } from 'vitest';
import { enterIdleIoClass, executeCheck, type ExecuteOptions } from '../src/index.js';
import { check, tempDir, processesWith } from './_fixtures.js';

const options = (overrides: Partial<ExecuteOptions> = {}): ExecuteOptions => ({
  prelude: 'say() { echo "said:$1"; }',
  timeoutMs: 10_000,
  stdoutCapBytes: 1024 * 1024,
  stderrCapBytes: 1024,
  env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: '/root' },
  cwd: tempDir(),
  ...overrides,
});

const markers: string[] = [];
afterEach(() => {
  for (const marker of markers.splice(0)) for (const pid of processesWith(marker)) process.kill(pid, 'SIGKILL');
});

describe('executeCheck', () => {
  it('runs a check at low CPU and I/O priority on request, still leading its own process group', async () => {
    // Field 19 of /proc/self/stat is the niceness; ionice -p names the I/O class; field 5 is the pgid.
    const script = ['stat=$(cat /proc/$$/stat); set -- ${stat##*) }', 'echo "nice=${17} pgid=${3} pid=$$"', 'ionice -p $$'].join('\n');
    const plain = await executeCheck(check('abc', script), options());
    expect(await enterIdleIoClass()).toBe(true);
    const polite = await executeCheck(check('abc', script), options({ nice: 7 }));
    const [, plainNice] = /nice=(-?\d+)/.exec(plain.stdout) ?? [];
    const [, nice, pgid, pid] = /nice=(-?\d+) pgid=(\d+) pid=(\d+)/.exec(polite.stdout) ?? [];
    expect(Number(nice)).toBe(Math.max(Number(plainNice), 7));
    expect(Number(nice)).toBeGreaterThan(Number(plainNice));
    expect(pgid).toBe(pid);
    expect(plain.stdout).not.toMatch(/^idle/m);
    expect(polite.stdout).toMatch(/^idle/m);
  });

  it('runs the prelude and the script in one bash, and captures stdout, stderr and the exit code', async () => {
    const outcome = await executeCheck(check('abc', 'say hello; echo oops >&2; exit 3'), options());
    expect(outcome).toMatchObject({ stdout: 'said:hello\n', stderr: 'oops\n', exitCode: 3, timedOut: false, stdoutOverflow: false });
  });

  it('passes the script on a file descriptor: it is not in the argv of bash', async () => {
    const outcome = await executeCheck(check('abc', '# SECRET-SCRIPT-TEXT\ntr "\\0" " " < /proc/$$/cmdline'), options());
    expect(outcome.stdout).toContain('bash');
    expect(outcome.stdout).not.toContain('SECRET-SCRIPT-TEXT');
  });

  it('hands bash the whole text, past ASCII and at any length, in the C and a UTF-8 locale, and closes fd 3', async () => {
    // The value after a long comment proves nothing was cut; the multi-byte text that the locale changes nothing.
    // fd 3 is tested by stat(), in bash itself: `ls /proc/$$/fd | ...` could see the pipe bash makes for it
    // (it takes the lowest free numbers, 3 and 4) before bash closes its ends.
    const script = [
      `# ${'x'.repeat(300_000)}`,
      'echo "tail:café — ü 🙂:$(say end)"',
      '[ -e /proc/$$/fd/3 ] && echo fd3-open || echo fd3-closed',
    ].join('\n');
    for (const locale of ['C', 'C.UTF-8']) {
      const outcome = await executeCheck(check('abc', script), options({ env: { PATH: '/usr/bin:/bin', LC_ALL: locale } }));
      expect(outcome.stderr).toBe('');
      const [first, fd3] = outcome.stdout.split('\n');
      expect(first).toBe('tail:café — ü 🙂:said:end');
      expect(fd3).toBe('fd3-closed');
    }
  });

  it('refuses a text longer than bash is told to read, before starting it', async () => {
    const outcome = await executeCheck(check('abc', `# ${'é'.repeat(4 * 1024 * 1024)}\necho ran`), options());
    expect(outcome.stdout).toBe('');
    expect(outcome.spawnError?.message).toMatch(/the prelude and script are \d+ bytes, over the 8388608 bash reads/);
  });

  it('gives the check no stdin', async () => {
    const outcome = await executeCheck(
      check('abc', 'if read -r line; then echo "read:$line"; else echo eof; fi; readlink /proc/$$/fd/0'),
      options(),
    );
    expect(outcome.stdout).toBe('eof\n/dev/null\n');
  });

  it('gives the check exactly the environment it is handed', async () => {
    process.env.AWS_SECRET_ACCESS_KEY = 'leaked';
    try {
      const outcome = await executeCheck(
        check('abc', 'env | cut -d= -f1 | grep -v -E "^(PWD|SHLVL|_|OLDPWD)$" | sort'),
        options({ env: { PATH: '/usr/bin:/bin', GATHER_CATEGORY: 'abuse' } }),
      );
      expect(outcome.stdout.trim().split('\n')).toEqual(['GATHER_CATEGORY', 'PATH']);
    } finally {
      delete process.env.AWS_SECRET_ACCESS_KEY;
    }
  });

  it('kills the whole process group on timeout, leaving no process behind', async () => {
    const marker = `gather-timeout-${process.pid}-${Date.now()}`;
    markers.push(marker);
    const script = `(exec -a ${marker} sleep 300) & (exec -a ${marker}-2 sleep 300) & echo started; wait`;
    const outcome = await executeCheck(check('abc', script), options({ timeoutMs: 500 }));
    expect(outcome.timedOut).toBe(true);
    expect(outcome.stdout).toBe('started\n');
    expect(outcome.durationMs).toBeLessThan(5_000);
    expect(processesWith(marker)).toEqual([]);
  });

  it('also kills background processes a check leaves behind when it exits', async () => {
    const marker = `gather-orphan-${process.pid}-${Date.now()}`;
    markers.push(marker);
    const outcome = await executeCheck(check('abc', `(exec -a ${marker} sleep 300) >/dev/null 2>&1 & echo done`), options());
    expect(outcome).toMatchObject({ stdout: 'done\n', exitCode: 0, timedOut: false });
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(processesWith(marker)).toEqual([]);
  });

  it('stops a check whose stdout exceeds the cap and keeps nothing of it', async () => {
    const outcome = await executeCheck(check('abc', 'yes gather-output-line'), options({ stdoutCapBytes: 64 * 1024 }));
    expect(outcome.stdoutOverflow).toBe(true);
    expect(outcome.stdout).toBe('');
    expect(outcome.timedOut).toBe(false);
  });

  it('keeps only the first bytes of stderr', async () => {
    const outcome = await executeCheck(
      check('abc', 'head -c 100000 /dev/zero | tr "\\0" e >&2; echo ok'),
      options({ stderrCapBytes: 1000 }),
    );
    expect(outcome.stderr).toHaveLength(1000);
    expect(outcome.stdout).toBe('ok\n');
  });

  it('reports a bash that cannot be started', async () => {
    const outcome = await executeCheck(check('abc', 'echo hi'), options({ bash: '/nonexistent/bash' }));
    expect(outcome.spawnError?.message).toMatch(/ENOENT/);
  });

  it('is stopped by an abort signal', async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 200);
    const outcome = await executeCheck(check('abc', 'sleep 30'), options({ signal: controller.signal }));
    expect(outcome.aborted).toBe(true);
    expect(outcome.durationMs).toBeLessThan(5_000);
  });
});
