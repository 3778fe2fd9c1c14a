import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { acquireLock, LockBusyError, processStartTime, type LockTakeover } from '../src/index.js';
import { bootId, staleReason } from '../src/lock.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});
const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'gather-lock-'));
  dirs.push(dir);
  return dir;
};

const owner = (fields: Record<string, unknown>) => JSON.stringify({ purpose: 'old', since: '2020-01-01T00:00:00Z', token: 'x', ...fields });

describe('the shared host lock', () => {
  it('records pid, process start time and boot id', async () => {
    const path = join(tempDir(), 'x.lock');
    const lock = await acquireLock(path, { purpose: 'test', waitMs: 0 });
    expect(JSON.parse(readFileSync(path, 'utf8'))).toMatchObject({
      pid: process.pid,
      start: processStartTime(process.pid),
      boot: bootId(),
    });
    expect(bootId()).toMatch(/^[0-9a-f-]{36}$/);
    await lock.release();
    expect(existsSync(path)).toBe(false);
  });

  it('keeps out a contender while its live owner holds it', async () => {
    const path = join(tempDir(), 'x.lock');
    writeFileSync(path, owner({ pid: 1, start: processStartTime(1), boot: bootId() }));
    const error = await acquireLock(path, { purpose: 'second', waitMs: 0, busyHint: 'try later.' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LockBusyError);
    expect((error as Error).message).toMatch(/\(pid 1, old, since .*\); try later\.$/);
  });

  // Each: what a crash leaves behind, and why it must not block the next run.
  const stale: Array<[string, () => string, RegExp]> = [
    [
      'a killed holder whose pid was reused by a live process (pid 1, other start time)',
      () => owner({ pid: 1, start: '0', boot: bootId() }),
      /pid 1 now belongs to another process/,
    ],
    [
      'the agent itself before an unclean reboot (our own pid, another start time)',
      () => owner({ pid: process.pid, start: '0' }),
      /now belongs to another process/,
    ],
    [
      'a lock from before the last reboot (other boot id), even with a matching pid and start',
      () => owner({ pid: process.pid, start: processStartTime(process.pid), boot: '00000000-0000-0000-0000-000000000000' }),
      /before the last reboot/,
    ],
    ['a holder whose process is gone', () => owner({ pid: 2 ** 22 + 12345 }), /its process is gone/],
    ['garbage', () => 'garbage', /unreadable/],
  ];
  it.each(stale)('takes over and reports the lock of %s', async (_what, content, reason) => {
    const path = join(tempDir(), 'x.lock');
    writeFileSync(path, content());
    const takeovers: LockTakeover[] = [];
    const lock = await acquireLock(path, { purpose: 'new', waitMs: 0, onTakeover: (t) => takeovers.push(t) });
    expect(takeovers).toEqual([expect.objectContaining({ path, reason: expect.stringMatching(reason) })]);
    expect(JSON.parse(readFileSync(path, 'utf8'))).toMatchObject({ pid: process.pid, purpose: 'new' });
    await lock.release();
  });

  it('takes over a FIFO planted at the lock as unreadable, instead of waiting in open() for a writer', async () => {
    const path = join(tempDir(), 'x.lock');
    execFileSync('mkfifo', [path]);
    const takeovers: LockTakeover[] = [];
    const lock = await acquireLock(path, { purpose: 'new', waitMs: 0, onTakeover: (t) => takeovers.push(t) });
    expect(takeovers).toEqual([expect.objectContaining({ path, reason: 'it is unreadable' })]);
    expect(lstatSync(path).isFile()).toBe(true);
    await lock.release();
  });

  it('staleReason tells a live owner from a reused pid', () => {
    expect(
      staleReason({ pid: process.pid, start: processStartTime(process.pid)!, boot: bootId()!, purpose: 'x', since: '', token: '' }),
    ).toBeUndefined();
    expect(staleReason({ pid: process.pid, start: '0', purpose: 'x', since: '', token: '' })).toMatch(/another process/);
  });

  it('never follows a symbolic link planted at the lock or its mutex: the victim is untouched', async () => {
    const dir = tempDir();
    const victim = join(tempDir(), 'victim');
    writeFileSync(victim, 'precious\n');
    symlinkSync(victim, join(dir, 'x.lock'));
    symlinkSync(victim, join(dir, 'x.lock.break'));
    const takeovers: LockTakeover[] = [];
    const lock = await acquireLock(join(dir, 'x.lock'), { purpose: 'new', waitMs: 2000, onTakeover: (t) => takeovers.push(t) });
    expect(takeovers.map((t) => t.reason)).toEqual(['it is a symbolic link']);
    await lock.release();
    expect(readFileSync(victim, 'utf8')).toBe('precious\n');
  });
});
