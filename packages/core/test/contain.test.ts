// Nothing a check starts outlives it: every way of leaving the check's process group (setsid, setsid -f,
// a double fork, nohup + disown, a daemon closing its fds) ends with the check, when it exits and when it
// times out. Runs as root (CI does): the checks go into cgroups below the test process's own cgroup.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { executeCheck, openContainment, ownCgroupDir, type Containment, type ExecuteOptions } from '../src/index.js';
import { check, tempDir, processesWith } from './_fixtures.js';

const options = (containment: Containment, overrides: Partial<ExecuteOptions> = {}): ExecuteOptions => ({
  prelude: '',
  timeoutMs: 30_000,
  stdoutCapBytes: 1024 * 1024,
  stderrCapBytes: 4096,
  env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: '/root' },
  cwd: tempDir(),
  containment,
  ...overrides,
});

const markers: string[] = [];
const containments: Containment[] = [];
afterEach(() => {
  for (const marker of markers.splice(0)) for (const pid of processesWith(marker)) process.kill(pid, 'SIGKILL');
  for (const containment of containments.splice(0)) containment.close();
});

function newMarker(): string {
  const marker = `gather-escape-${process.pid}-${Date.now()}-${markers.length}`;
  markers.push(marker);
  return marker;
}

function open(mode: 'auto' | 'cgroup' | 'pgroup'): Containment {
  const containment = openContainment({ mode, runId: `test-${Date.now()}` });
  containments.push(containment);
  return containment;
}

/**
 * A check starting five processes that leave its process group or its pipes in the usual ways, each named
 * `<marker>-<way>`, then waiting until all five run (so the count is exact) before it goes on with `then`.
 */
function escapingScript(marker: string, then: string): string {
  const run = (way: string) => `exec -a ${marker}-${way} sleep 1000`;
  return [
    `setsid bash -c '${run('setsid')}' </dev/null >/dev/null 2>&1 &`,
    `setsid -f bash -c '${run('setsid-f')}' </dev/null >/dev/null 2>&1`,
    `( setsid bash -c '( ${run('double-fork')} ) &' & ) </dev/null >/dev/null 2>&1`,
    `nohup bash -c '${run('nohup')}' </dev/null >/dev/null 2>&1 & disown`,
    `setsid bash -c 'exec 0<&- 1>&- 2>&-; ${run('daemon')}' &`,
    // Wait (at most 10 s) until the five run: argv[0] of each is the marker.
    `for _ in $(seq 100); do n=0; for f in /proc/[0-9]*/cmdline; do IFS= read -r -d '' c <"$f" 2>/dev/null && [[ $c == ${marker}-* ]] && n=$((n + 1)); done; [ "$n" -ge 5 ] && break; sleep 0.1; done`,
    'echo "started $n"',
    then,
  ].join('\n');
}

describe('containment', () => {
  it('finds the cgroup v2 directory of this process from /proc/self/cgroup and mountinfo', () => {
    const dir = ownCgroupDir();
    expect(existsSync(`${dir}/cgroup.procs`)).toBe(true);
    expect(readFileSync(`${dir}/cgroup.procs`, 'utf8').split('\n')).toContain(String(process.pid));
  });

  it('kills every process a check leaves behind when it exits, and counts them', async () => {
    const containment = open('auto');
    expect(containment.mechanism).toBe('cgroup');
    const marker = newMarker();
    const outcome = await executeCheck(check('esc', escapingScript(marker, 'exit 0')), options(containment));
    expect(outcome.stdout).toBe('started 5\n');
    expect(outcome.containment).toBe('cgroup');
    expect(outcome.killedAfterExit).toBeGreaterThanOrEqual(5);
    expect(processesWith(marker)).toEqual([]);
  });

  it('kills every process of a check that times out', async () => {
    const containment = open('auto');
    const marker = newMarker();
    const outcome = await executeCheck(check('esc', escapingScript(marker, 'sleep 1000')), options(containment, { timeoutMs: 3_000 }));
    expect(outcome.timedOut).toBe(true);
    expect(outcome.stdout).toBe('started 5\n');
    // Killed with their check, not after it: nothing to count.
    expect(outcome.killedAfterExit).toBe(0);
    expect(processesWith(marker)).toEqual([]);
  });

  it('kills every process of a check stopped by an abort', async () => {
    const containment = open('auto');
    const marker = newMarker();
    const controller = new AbortController();
    const running = executeCheck(check('esc', escapingScript(marker, 'sleep 1000')), options(containment, { signal: controller.signal }));
    // Abort once the five run.
    for (let i = 0; i < 200 && processesWith(marker).length < 5; i++) await new Promise((resolve) => setTimeout(resolve, 50));
    controller.abort();
    const outcome = await running;
    expect(outcome.aborted).toBe(true);
    expect(processesWith(marker)).toEqual([]);
  });

  it('removes its cgroups: none is left once the checks ended and the run closed', async () => {
    const containment = open('cgroup');
    await executeCheck(check('esc', 'sleep 1000 & echo ok'), options(containment));
    containment.close();
    const leftovers = readdirSync(ownCgroupDir()).filter((name) => name.startsWith(`gather-${process.pid}-`));
    expect(leftovers).toEqual([]);
  });

  it('falls back to the process group when asked, and says so', async () => {
    const containment = open('pgroup');
    expect(containment.mechanism).toBe('pgroup');
    const marker = newMarker();
    const outcome = await executeCheck(
      check('esc', `(exec -a ${marker}-bg sleep 1000) >/dev/null 2>&1 & sleep 0.5; echo done`),
      options(containment),
    );
    expect(outcome.containment).toBe('pgroup');
    expect(outcome.stdout).toBe('done\n');
    expect(outcome.killedAfterExit).toBe(1);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(processesWith(marker)).toEqual([]);
  });

  it("works with only the systemd unit's capabilities (CAP_DAC_READ_SEARCH, CAP_SYS_PTRACE) in a delegated cgroup", () => {
    // As systemd's Delegate=yes does: a root-owned cgroup the agent starts in. Then every capability but the
    // unit's two is dropped (setpriv), and an agent-like process contains a check that detaches.
    const core = resolve(dirname(fileURLToPath(import.meta.url)), '../dist/index.js');
    const unit = join(ownCgroupDir(), `gather-test-unit-${process.pid}-${Date.now()}`);
    const marker = newMarker();
    const script = `setsid -f bash -c 'exec -a ${marker}-setsid-f sleep 1000' </dev/null >/dev/null 2>&1; grep CapEff /proc/$$/status`;
    const program = [
      `const { openContainment, executeCheck } = await import(${JSON.stringify(core)});`,
      `const containment = openContainment({ mode: 'cgroup', runId: 'caps' });`,
      `const outcome = await executeCheck({ id: 'cap', category: 'abuse', script: ${JSON.stringify(script)} },`,
      `  { prelude: '', timeoutMs: 20000, stdoutCapBytes: 65536, stderrCapBytes: 4096, env: { PATH: '/usr/bin:/bin' }, cwd: '/', containment, nice: 5 });`,
      `containment.close();`,
      `console.log(JSON.stringify({ mechanism: outcome.containment, killed: outcome.killedAfterExit, stdout: outcome.stdout }));`,
    ].join('\n');
    mkdirSync(unit);
    try {
      const child = spawnSync(
        'bash',
        [
          '-c',
          'echo $$ > "$1/cgroup.procs" && exec setpriv --bounding-set -all,+dac_read_search,+sys_ptrace --inh-caps -all "$2" --input-type=module -e "$3"',
          'x',
          unit,
          process.execPath,
          program,
        ],
        { encoding: 'utf8', timeout: 60_000 },
      );
      expect(child.stderr).toBe('');
      const result = JSON.parse(child.stdout) as { mechanism: string; killed: number; stdout: string };
      // CapEff of the check: exactly the two capabilities (bits 2 and 19).
      expect(result).toEqual({ mechanism: 'cgroup', killed: 1, stdout: 'CapEff:\t0000000000080004\n' });
      expect(processesWith(marker)).toEqual([]);
      expect(readdirSync(unit).filter((name) => name.startsWith('gather-'))).toEqual([]);
    } finally {
      rmdirSync(unit);
    }
  });

  it('falls back to process groups without root, says why, and refuses to when told to use a cgroup', () => {
    const core = resolve(dirname(fileURLToPath(import.meta.url)), '../dist/index.js');
    const marker = newMarker();
    const script = `(exec -a ${marker}-bg sleep 1000) >/dev/null 2>&1 & echo $(id -u)`;
    const program = [
      `const { openContainment, executeCheck } = await import(${JSON.stringify(core)});`,
      `const containment = openContainment({ mode: 'auto', runId: 'nobody' });`,
      `const outcome = await executeCheck({ id: 'usr', category: 'abuse', script: ${JSON.stringify(script)} },`,
      `  { prelude: '', timeoutMs: 20000, stdoutCapBytes: 65536, stderrCapBytes: 4096, env: { PATH: '/usr/bin:/bin' }, cwd: '/', containment });`,
      `let forced; try { openContainment({ mode: 'cgroup', runId: 'nobody' }); } catch (error) { forced = error.message; }`,
      `console.log(JSON.stringify({ mechanism: containment.mechanism, reason: containment.fallbackReason, outcome: outcome.containment, killed: outcome.killedAfterExit, stdout: outcome.stdout, forced }));`,
    ].join('\n');
    const child = spawnSync(
      'setpriv',
      ['--reuid', '65534', '--regid', '65534', '--clear-groups', process.execPath, '--input-type=module', '-e', program],
      {
        encoding: 'utf8',
        timeout: 60_000,
      },
    );
    expect(child.stderr).toBe('');
    expect(JSON.parse(child.stdout)).toEqual({
      mechanism: 'pgroup',
      reason: expect.stringMatching(/not writable \(EACCES\): run as root, or delegate a cgroup subtree/),
      outcome: 'pgroup',
      killed: 1,
      stdout: '65534\n',
      forced: expect.stringMatching(/Containment "cgroup" is not available: .*Use containment "auto" to fall back to process groups\./),
    });
    expect(processesWith(marker)).toEqual([]);
  });

  it('cleans up after an agent that died mid-run: kills what is left in its cgroups and removes them', async () => {
    // pid 999999999 is above any pid_max: that agent is surely gone.
    const stale = join(ownCgroupDir(), `gather-999999999-stale${process.pid}-1`);
    const marker = newMarker();
    // Another process's sweep (the agent's tests run beside these) may remove the stale cgroup between its
    // mkdir and bash moving in; then the leftover would start outside it. Stage again until it is inside.
    let staged = '';
    for (let attempt = 0; attempt < 20 && staged !== 'started\n'; attempt++) {
      mkdirSync(join(stale, 'abc-1'), { recursive: true });
      staged = spawnSync(
        'bash',
        [
          '-c',
          `{ echo $$ > "$1/cgroup.procs" && grep -q "$2/abc-1$" /proc/self/cgroup; } 2>/dev/null || exit 3; (exec -a ${marker}-left sleep 1000) >/dev/null 2>&1 & echo started`,
          'x',
          join(stale, 'abc-1'),
          stale.slice(stale.lastIndexOf('/')),
        ],
        { encoding: 'utf8' },
      ).stdout;
    }
    expect(staged).toBe('started\n');
    for (let i = 0; i < 100 && processesWith(marker).length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(processesWith(marker)).toHaveLength(1);
    open('auto');
    for (let i = 0; i < 500 && processesWith(marker).length > 0; i++) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(processesWith(marker)).toEqual([]);
    // The sweep removes what it emptied; a cgroup still emptying is removed by the next run.
    for (let i = 0; i < 100 && existsSync(stale); i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      open('auto');
    }
    expect(existsSync(stale)).toBe(false);
  });

  it('refuses an unknown mechanism with a message naming the choices', () => {
    expect(() => openContainment({ mode: 'pidns' as never, runId: 'x' })).toThrow(
      /Unknown containment "pidns". Use one of: auto, cgroup, pgroup/,
    );
  });
});
