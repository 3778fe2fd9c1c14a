import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { acquireLock, LockBusyError, processStartTime } from '../src/lock.js';
import { agent, cleanEnv, makeBundleFile, tempDir } from './_helpers.js';

const DIST_INDEX = resolve(__dirname, '../dist/index.js');
const children: ChildProcess[] = [];
afterEach(() => {
  for (const child of children.splice(0)) child.kill('SIGKILL');
});

/** Another process that takes the lock and holds it until killed (or for `releaseAfterMs`). */
async function holder(path: string, releaseAfterMs?: number): Promise<ChildProcess> {
  const code = `
    import { acquireLock } from ${JSON.stringify(DIST_INDEX)};
    const lock = await acquireLock(${JSON.stringify(path)}, { purpose: 'test holder', waitMs: 0 });
    console.log('held');
    ${releaseAfterMs !== undefined ? `setTimeout(() => lock.release().then(() => process.exit(0)), ${releaseAfterMs});` : 'setInterval(() => {}, 1000);'}
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  await new Promise<void>((resolvePromise, reject) => {
    child.stdout!.on('data', (chunk) => String(chunk).includes('held') && resolvePromise());
    child.on('exit', (code) => reject(new Error(`holder exited with ${code}`)));
  });
  return child;
}

describe('the host lock', () => {
  it('is exclusive, names its holder to a contender, and can be taken again once released', async () => {
    const path = join(tempDir(), 'agent.lock');
    const lock = await acquireLock(path, { purpose: 'run abuse', waitMs: 0 });
    const owner = JSON.parse(readFileSync(path, 'utf8'));
    expect(owner).toMatchObject({ pid: process.pid, purpose: 'run abuse', start: processStartTime(process.pid) });
    const busy = await acquireLock(path, { purpose: 'second', waitMs: 0 }).catch((error: unknown) => error);
    expect(busy).toBeInstanceOf(LockBusyError);
    expect((busy as Error).message).toMatch(
      new RegExp(`Another gather-agent holds ${path} \\(pid ${process.pid}, run abuse, since .+\\); nothing was run`),
    );
    await lock.release();
    expect(existsSync(path)).toBe(false);
    await (await acquireLock(path, { purpose: 'third', waitMs: 0 })).release();
  });

  it('a contender in another process waits a bounded time, then gives up with a clear message', async () => {
    const path = join(tempDir(), 'agent.lock');
    const child = await holder(path);
    const started = Date.now();
    let waitedFor: unknown;
    const error = await acquireLock(path, { purpose: 'contender', waitMs: 700, pollMs: 50, onWait: (o) => (waitedFor = o) }).catch(
      (e: unknown) => e,
    );
    expect(Date.now() - started).toBeGreaterThanOrEqual(700);
    expect(error).toBeInstanceOf(LockBusyError);
    expect((error as Error).message).toMatch(
      new RegExp(`\\(pid ${child.pid}, test holder, since .+\\) after waiting 1 s; nothing was run`),
    );
    expect(waitedFor).toMatchObject({ pid: child.pid });
  });

  it('a contender gets the lock as soon as the holder releases it', async () => {
    const path = join(tempDir(), 'agent.lock');
    await holder(path, 400);
    const started = Date.now();
    const lock = await acquireLock(path, { purpose: 'contender', waitMs: 10_000, pollMs: 50 });
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(JSON.parse(readFileSync(path, 'utf8')).pid).toBe(process.pid);
    await lock.release();
  });

  it('dies with its process: a lock left by a killed holder is stale and taken over at once', async () => {
    const path = join(tempDir(), 'agent.lock');
    const child = await holder(path);
    child.kill('SIGKILL');
    await once(child, 'exit');
    expect(JSON.parse(readFileSync(path, 'utf8')).pid).toBe(child.pid); // still there
    const lock = await acquireLock(path, { purpose: 'after crash', waitMs: 0 });
    expect(JSON.parse(readFileSync(path, 'utf8'))).toMatchObject({ pid: process.pid, purpose: 'after crash' });
    await lock.release();
  });

  it('treats a lock whose pid now belongs to another process (other start time), or garbage, as stale', async () => {
    const path = join(tempDir(), 'agent.lock');
    // A live pid (ours) but another start time: the pid was reused after the holder died.
    writeFileSync(path, JSON.stringify({ pid: process.pid, start: '1', purpose: 'old', since: '2020-01-01T00:00:00Z', token: 'x' }));
    await (await acquireLock(path, { purpose: 'new', waitMs: 0 })).release();
    writeFileSync(path, 'garbage');
    await (await acquireLock(path, { purpose: 'new', waitMs: 0 })).release();
  });

  it('when many contenders find a stale lock at once, exactly one gets it (every time)', async () => {
    // Many rounds: a takeover race (a contender removing the fresh lock of a faster one) shows up in some.
    for (let round = 0; round < 40; round++) {
      const path = join(tempDir(), 'agent.lock');
      writeFileSync(path, JSON.stringify({ pid: 2 ** 22 + 12345, purpose: 'dead', since: '2020-01-01T00:00:00Z', token: 'x' }));
      const attempts = await Promise.allSettled(Array.from({ length: 12 }, (_, i) => acquireLock(path, { purpose: `c${i}`, waitMs: 0 })));
      const winners = attempts.filter(
        (a): a is PromiseFulfilledResult<Awaited<ReturnType<typeof acquireLock>>> => a.status === 'fulfilled',
      );
      expect(winners, `round ${round}`).toHaveLength(1);
      expect(
        attempts.filter((a) => a.status === 'rejected').every((a) => (a as PromiseRejectedResult).reason instanceof LockBusyError),
      ).toBe(true);
      expect(JSON.parse(readFileSync(path, 'utf8')).token).toBe(winners[0]!.value.owner.token);
      await winners[0]!.value.release();
    }
  });
});

describe('gather-agent run after a crash', () => {
  it('takes over and logs a run lock whose pid now belongs to another live process (pid 1, other start time), and runs', async () => {
    const state = tempDir('gather-agent-state-');
    const fx = await makeBundleFile({ 'abuse/run-abc': 'output a number 1' });
    writeFileSync(
      join(state, 'agent.lock'),
      JSON.stringify({ pid: 1, start: '0', purpose: 'run all', since: '2020-01-01T00:00:00Z', token: 'x' }),
    );
    const result = await agent(
      ['run', '--bundle', fx.bundlePath, '--public-key', fx.publicKeyPath, '--lock-wait', '0', '--log-level', 'warn'],
      {
        env: cleanEnv({ GATHER_STATE_DIR: state }),
      },
    );
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/"name":"a"/);
    expect(result.stderr).toMatch(/"level":"warn".*"reason":"pid 1 now belongs to another process.*"msg":"took over a stale lock"/);
    expect(existsSync(join(state, 'agent.lock'))).toBe(false);
  });
});

describe('gather-agent run while another run holds the lock', () => {
  it('waits the bounded time, then exits 8 with a clear message and runs nothing', async () => {
    const state = tempDir('gather-agent-state-');
    const sentinel = join(tempDir(), 'ran');
    const fx = await makeBundleFile({ 'abuse/run-abc': `touch ${sentinel}; output a number 1` });
    const child = await holder(join(state, 'agent.lock'));
    const result = await agent(['run', '--bundle', fx.bundlePath, '--public-key', fx.publicKeyPath, '--lock-wait', '1'], {
      env: cleanEnv({ GATHER_STATE_DIR: state }),
    });
    expect(result.code).toBe(8);
    expect(result.stderr).toContain(`Another gather-agent holds ${join(state, 'agent.lock')} (pid ${child.pid}, test holder`);
    expect(result.stderr).toMatch(/"level":"warn".*another gather-agent run is in progress; waiting up to 1 s/);
    expect(result.stdout).toBe('');
    expect(existsSync(sentinel)).toBe(false);
  });

  it('runs once the other run released the lock within the wait', async () => {
    const state = tempDir('gather-agent-state-');
    const fx = await makeBundleFile({ 'abuse/run-abc': 'output a number 1' });
    await holder(join(state, 'agent.lock'), 800);
    const result = await agent(['run', '--bundle', fx.bundlePath, '--public-key', fx.publicKeyPath, '--lock-wait', '20'], {
      env: cleanEnv({ GATHER_STATE_DIR: state }),
    });
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/"name":"a"/);
    expect(existsSync(join(state, 'agent.lock'))).toBe(false);
  });
});
