import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { AGENT_CLI, agent, cleanEnv, makeBundleFile, ndjson, tempDir, type Fixture } from './_helpers.js';
import { processesWith, waitFor } from './_process.js';

interface Daemon {
  child: ChildProcess;
  logs: () => Array<Record<string, unknown>>;
  stderr: () => string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const running: ChildProcess[] = [];
afterEach(() => {
  for (const child of running.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
});

function startDaemon(args: string[], env: Record<string, string>): Daemon {
  const child = spawn(process.execPath, [AGENT_CLI, 'daemon', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: cleanEnv({ GATHER_LOG_LEVEL: 'debug', ...env }),
  });
  running.push(child);
  let stderr = '';
  child.stderr!.on('data', (chunk) => (stderr += chunk));
  child.stdout!.resume();
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal })),
  );
  const logs = () =>
    stderr
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  return { child, logs, stderr: () => stderr, exit };
}

function setup(fx: Fixture, extra: Record<string, string> = {}) {
  const state = tempDir('gather-agent-state-');
  const tmp = tempDir('gather-agent-tmp-');
  const out = join(tempDir(), 'results.ndjson');
  const env = {
    GATHER_BUNDLE: `file:${fx.bundlePath}`,
    GATHER_PUBLIC_KEY: fx.publicKeyPath,
    GATHER_OUT: out,
    GATHER_STATE_DIR: state,
    GATHER_ABUSE_FIRST_DELAY_SEC: '0',
    GATHER_ANALYTICS_FIRST_DELAY_SEC: '3600',
    TMPDIR: tmp,
    ...extra,
  };
  const docs = () => (existsSync(out) ? ndjson(readFileSync(out, 'utf8')) : []);
  return { state, tmp, out, env, docs };
}

describe('gather-agent daemon', () => {
  it('runs the abuse checks on their schedule, appends results and a run summary per run, logs JSON lines', async () => {
    const fx = await makeBundleFile({
      'abuse/run-abc': 'output proc.count number 3',
      'analytics/run-def': 'output shell string \'"bash"\'',
    });
    const { env, docs, state } = setup(fx, { GATHER_ABUSE_EVERY_SEC: '1', GATHER_ABUSE_SPLAY_PCT: '0' });
    const daemon = startDaemon([], env);
    await waitFor(() => docs().filter((d) => d.kind === 'run').length >= 3, 20_000);
    daemon.child.kill('SIGTERM');
    expect(await daemon.exit).toEqual({ code: 0, signal: null });

    const all = docs();
    const runs = all.filter((d) => d.kind === 'run');
    expect(runs.length).toBeGreaterThanOrEqual(3);
    for (const run of runs) {
      expect(run).toMatchObject({
        category: 'abuse',
        outcome: 'ok',
        trigger: 'schedule',
        checks: { run: 1, ok: 1 },
        results: 1,
        overrun: false,
      });
    }
    // Only abuse ran (analytics is due in an hour); every run has its own run_id.
    expect(all.filter((d) => d.kind === 'result').every((d) => d.check === 'abc')).toBe(true);
    expect(new Set(runs.map((r) => r.run_id)).size).toBe(runs.length);

    const logs = daemon.logs();
    expect(logs.length).toBeGreaterThan(0);
    for (const line of logs)
      expect(line).toMatchObject({ level: expect.any(String), time: expect.any(String), pid: daemon.child.pid, msg: expect.any(String) });
    expect(logs.map((l) => l.msg)).toEqual(
      expect.arrayContaining(['daemon started', 'run started', 'run completed', 'daemon stopping', 'daemon stopped']),
    );
    expect(
      daemon
        .stderr()
        .split('\n')
        .filter((l) => l && !l.startsWith('{')),
    ).toEqual([]);
    // Locks are gone after a clean stop.
    expect(readdirSync(state).filter((f) => f.endsWith('.lock'))).toEqual([]);
  });

  it('on SIGTERM mid-run lets the checks finish within the grace period: results delivered, exit 0', async () => {
    const fx = await makeBundleFile({ 'abuse/run-abc': 'sleep 2; output done boolean true' });
    const { env, docs, tmp } = setup(fx, { GATHER_GRACE_SEC: '20' });
    const daemon = startDaemon([], env);
    await waitFor(() => daemon.logs().some((l) => l.msg === 'run started'));
    await new Promise((resolve) => setTimeout(resolve, 500));
    daemon.child.kill('SIGTERM');
    expect(await daemon.exit).toEqual({ code: 0, signal: null });
    expect(docs()).toMatchObject([
      { kind: 'result', check: 'abc', name: 'done', value: true },
      { kind: 'run', outcome: 'ok', checks: { run: 1, ok: 1 } },
    ]);
    expect(readdirSync(tmp)).toEqual([]);
  });

  it('on SIGTERM mid-run kills the checks at the grace deadline: no process survives, temp dir gone, what ran is exported, exit 0', async () => {
    const marker = `gather-daemon-sigterm-${process.pid}`;
    const fx = await makeBundleFile({
      'abuse/run-abc': 'output quick number 1',
      'abuse/run-xyz': `(exec -a ${marker} sleep 300) & wait`,
    });
    const { env, docs, tmp } = setup(fx, { GATHER_GRACE_SEC: '1', GATHER_CONCURRENCY: '2' });
    const daemon = startDaemon([], env);
    await waitFor(() => processesWith(marker).length > 0);
    const signalled = Date.now();
    daemon.child.kill('SIGTERM');
    expect(await daemon.exit).toEqual({ code: 0, signal: null });
    expect(Date.now() - signalled).toBeGreaterThanOrEqual(1000);
    expect(Date.now() - signalled).toBeLessThan(10_000);
    expect(processesWith(marker)).toEqual([]);
    expect(readdirSync(tmp)).toEqual([]);
    const all = docs();
    expect(all).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ kind: 'result', check: 'abc', name: 'quick' }),
        expect.objectContaining({ kind: 'error', check: 'xyz', reason: 'killed' }),
      ]),
    );
    expect(all.at(-1)).toMatchObject({ kind: 'run', outcome: 'interrupted', checks: { run: 2, ok: 1, failed: 1 } });
    expect(daemon.logs().map((l) => l.msg)).toContain('grace period over: killing the running checks');
  });

  it('reports a run that overruns its interval, and never starts a second run of that category meanwhile', async () => {
    const fx = await makeBundleFile({ 'abuse/run-abc': 'sleep 2.5; output slow boolean true' });
    const { env, docs } = setup(fx, { GATHER_ABUSE_EVERY_SEC: '1', GATHER_ABUSE_SPLAY_PCT: '0' });
    const daemon = startDaemon([], env);
    await waitFor(() => docs().filter((d) => d.kind === 'run').length >= 2, 20_000);
    daemon.child.kill('SIGTERM');
    expect((await daemon.exit).code).toBe(0);
    const runs = docs().filter((d) => d.kind === 'run');
    expect(runs[0]).toMatchObject({ outcome: 'ok', overrun: true });
    const msgs = daemon.logs().map((l) => l.msg);
    expect(msgs).toContain('run overran its interval');
    expect(msgs).toContain('run skipped: the previous run of this category is still going');
    // Runs never overlapped: each started after the previous one ended.
    const spans = daemon
      .logs()
      .filter((l) => l.msg === 'run started' || l.msg === 'run completed')
      .map((l) => l.msg);
    for (let i = 0; i < spans.length; i++) expect(spans[i]).toBe(i % 2 === 0 ? 'run started' : 'run completed');
  });

  it('is a single instance per host: a second daemon exits 8 naming the first', async () => {
    const fx = await makeBundleFile({ 'abuse/run-abc': 'output a number 1' });
    const { env } = setup(fx, { GATHER_ABUSE_FIRST_DELAY_SEC: '3600' });
    const first = startDaemon([], env);
    await waitFor(() => first.logs().some((l) => l.msg === 'daemon started'));
    const second = await agent(['daemon'], { env: cleanEnv({ ...env }) });
    expect(second.code).toBe(8);
    expect(second.stderr).toMatch(
      new RegExp(`Another gather-agent holds ${env.GATHER_STATE_DIR}/daemon.lock \\(pid ${first.child.pid}, daemon, since`),
    );
    first.child.kill('SIGINT');
    expect((await first.exit).code).toBe(0);
  });

  it('after a crash, takes over and logs daemon and run locks left behind (a reused pid, an earlier boot), then runs', async () => {
    const fx = await makeBundleFile({ 'abuse/run-abc': 'output a number 1' });
    const { env, docs, state } = setup(fx, { GATHER_ABUSE_EVERY_SEC: '3600' });
    const leftover = { purpose: 'daemon', since: '2020-01-01T00:00:00Z', token: 'x' };
    writeFileSync(join(state, 'daemon.lock'), JSON.stringify({ ...leftover, pid: 1, start: '0' }));
    writeFileSync(join(state, 'agent.lock'), JSON.stringify({ ...leftover, pid: process.pid, boot: 'an-earlier-boot' }));
    const daemon = startDaemon([], env);
    await waitFor(() => docs().some((d) => d.kind === 'run'), 20_000);
    daemon.child.kill('SIGTERM');
    expect((await daemon.exit).code).toBe(0);
    const takeovers = daemon.logs().filter((l) => l.msg === 'took over a stale lock');
    expect(takeovers).toEqual([
      expect.objectContaining({
        level: 'warn',
        lock: join(state, 'daemon.lock'),
        reason: 'pid 1 now belongs to another process (other start time)',
      }),
      expect.objectContaining({ level: 'warn', lock: join(state, 'agent.lock'), reason: 'it was taken before the last reboot' }),
    ]);
    expect(readdirSync(state).filter((name) => name.endsWith('.lock'))).toEqual([]);
  });

  it('SIGHUP reloads the configuration; an invalid one is reported and the running one kept', async () => {
    const fx = await makeBundleFile({ 'abuse/run-abc': 'output a number 1' });
    const configFile = join(tempDir(), 'agent.json');
    writeFileSync(configFile, JSON.stringify({ logLevel: 'debug', schedule: { abuse: { everySec: 3600, firstDelaySec: 3600 } } }));
    const { env, docs } = setup(fx);
    const { GATHER_ABUSE_FIRST_DELAY_SEC: _ignored, ...rest } = env;
    const daemon = startDaemon(['--config', configFile], { ...rest, GATHER_LOG_LEVEL: '' });
    await waitFor(() => daemon.logs().some((l) => l.msg === 'daemon started'));

    writeFileSync(configFile, '{ "schedule": ');
    daemon.child.kill('SIGHUP');
    await waitFor(() => daemon.logs().some((l) => l.msg === 'configuration reload failed; keeping the current configuration'));
    expect(daemon.logs().find((l) => l.msg === 'configuration reload failed; keeping the current configuration')).toMatchObject({
      level: 'error',
      problems: [expect.stringMatching(/not valid JSON/)],
    });

    // Now abuse every second from the start: the new schedule applies without a restart.
    writeFileSync(configFile, JSON.stringify({ logLevel: 'debug', schedule: { abuse: { everySec: 1, splayPct: 0, firstDelaySec: 0 } } }));
    daemon.child.kill('SIGHUP');
    await waitFor(() => docs().some((d) => d.kind === 'run'), 15_000);
    expect(daemon.logs().map((l) => l.msg)).toContain('configuration reloaded');
    daemon.child.kill('SIGTERM');
    expect((await daemon.exit).code).toBe(0);
  });

  it('never logs credentials: passwords from the environment and URL credentials are redacted', async () => {
    const fx = await makeBundleFile({ 'abuse/run-abc': 'output a number 1' });
    const { env } = setup(fx, {
      GATHER_EXPORTER: 'elasticsearch',
      // Nothing listens there: the exporter spools, and logs about it.
      GATHER_ES_URL: 'http://admin:url-secret-4242@127.0.0.1:1',
      GATHER_ES_USERNAME: 'gather',
      GATHER_ES_PASSWORD: 'env-secret-9191',
      GATHER_SPOOL_DIR: tempDir('gather-spool-'),
    });
    const daemon = startDaemon([], env);
    await waitFor(
      () =>
        daemon.logs().some((l) => l.msg === 'run completed' || l.msg === 'run completed but exporting failed' || l.msg === 'run failed'),
      60_000,
    );
    daemon.child.kill('SIGTERM');
    expect((await daemon.exit).code).toBe(0);
    const stderr = daemon.stderr();
    expect(stderr).toContain('daemon started');
    expect(stderr).toContain('http://admin:[redacted]@127.0.0.1:1');
    expect(stderr).not.toContain('url-secret-4242');
    expect(stderr).not.toContain('env-secret-9191');
    expect(daemon.logs().find((l) => l.msg === 'daemon started')).toMatchObject({ config: { elasticsearch: { auth: 'user gather' } } });
  });
});
