/**
 * A host-wide lock that dies with its process, without native code: a lock file created atomically with
 * `link()` (so it is never seen half written) holding the owner's pid and its start time from /proc. A lock
 * whose process is gone, or whose pid now belongs to another process (same pid, other start time), is stale
 * and is taken over. Taking over is serialised by a short-lived `<lock>.break` file, so two contenders never
 * both remove a lock and one of them steal the other's fresh one.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, unlinkSync } from 'node:fs';
import { link, mkdir, readFile, stat, unlink, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { GatherError } from '@gather/core';

export interface LockOwner {
  pid: number;
  /** Field 22 of /proc/<pid>/stat (clock ticks since boot); absent where /proc is not available. */
  start?: string;
  /** What holds it, e.g. "run abuse" or "daemon". */
  purpose: string;
  since: string;
  token: string;
}

/** Another gather-agent holds the lock (after waiting, if asked to). */
export class LockBusyError extends GatherError {
  override name = 'LockBusyError';
  constructor(
    message: string,
    readonly owner: LockOwner | undefined,
  ) {
    super('GATHER_USAGE', message, { scope: 'agent' });
  }
}

export interface AcquireOptions {
  /** What the lock is for, shown to a waiting contender. */
  purpose: string;
  /** How long to wait for a busy lock, ms (0: fail at once). */
  waitMs: number;
  /** Poll interval while waiting, ms. Default 200. */
  pollMs?: number;
  signal?: AbortSignal;
  /** Called once when the lock is busy and the caller is going to wait. */
  onWait?: (owner: LockOwner | undefined) => void;
}

export interface Lock {
  readonly path: string;
  readonly owner: LockOwner;
  release(): Promise<void>;
}

/** Start time of a process from /proc, or undefined when unavailable. */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces and parentheses: fields are counted after the last ")".
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19];
  } catch {
    return undefined;
  }
}

/** Whether the owner recorded in a lock file is still that very process. */
export function ownerAlive(owner: LockOwner): boolean {
  try {
    process.kill(owner.pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ESRCH') return false;
    // EPERM: it exists, owned by someone else.
  }
  if (owner.start !== undefined) {
    const start = processStartTime(owner.pid);
    if (start !== undefined && start !== owner.start) return false; // the pid was reused
  }
  return true;
}

/** The lock file's text and its owner (undefined when unreadable garbage), or 'missing'. */
async function readOwner(path: string): Promise<{ text: string; owner: LockOwner | undefined } | 'missing'> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 'missing';
    throw error;
  }
  try {
    const owner = JSON.parse(text) as LockOwner;
    return { text, owner: Number.isInteger(owner.pid) && owner.pid > 0 ? owner : undefined };
  } catch {
    return { text, owner: undefined }; // garbage: treated as stale
  }
}

const BREAK_STALE_MS = 10_000;

/** Removes the lock at `path` if it is (still) stale, under the `.break` mutex. */
async function breakStale(path: string, judged: string): Promise<void> {
  const breakPath = `${path}.break`;
  try {
    await writeFile(breakPath, String(process.pid), { flag: 'wx', mode: 0o600 });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    // Someone else is breaking it; if they died doing so, clear their mutex for the next attempt.
    const info = await stat(breakPath).catch(() => undefined);
    if (info && Date.now() - info.mtimeMs > BREAK_STALE_MS) await unlink(breakPath).catch(() => undefined);
    return;
  }
  try {
    // Re-read under the mutex: only remove the very content that was judged stale.
    const now = await readFile(path, 'utf8').catch(() => undefined);
    if (now === judged) await unlink(path).catch(() => undefined);
  } finally {
    await unlink(breakPath).catch(() => undefined);
  }
}

function describeOwner(owner: LockOwner | undefined): string {
  return owner ? `pid ${owner.pid}, ${owner.purpose}, since ${owner.since}` : 'unknown owner';
}

/** Takes the lock, waiting up to `waitMs` for a live owner to release it; throws LockBusyError otherwise. */
export async function acquireLock(path: string, options: AcquireOptions): Promise<Lock> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const owner: LockOwner = {
    pid: process.pid,
    ...(processStartTime(process.pid) !== undefined ? { start: processStartTime(process.pid)! } : {}),
    purpose: options.purpose,
    since: new Date().toISOString(),
    token: randomBytes(8).toString('hex'),
  };
  const content = JSON.stringify(owner);
  const deadline = Date.now() + options.waitMs;
  let waited = false;
  let lastOwner: LockOwner | undefined;
  for (;;) {
    options.signal?.throwIfAborted();
    const tmp = `${path}.${process.pid}.${owner.token}`;
    await writeFile(tmp, content, { mode: 0o600 });
    try {
      await link(tmp, path);
      return makeLock(path, owner, content);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    } finally {
      await unlink(tmp).catch(() => undefined);
    }
    const read = await readOwner(path);
    if (read === 'missing') continue;
    const current = read.owner;
    if (current === undefined || !ownerAlive(current)) {
      // Only the very text judged stale may be removed: re-reading here could see a fresh lock that a
      // faster contender has just taken.
      await breakStale(path, read.text);
      continue;
    }
    lastOwner = current;
    if (Date.now() >= deadline) {
      const waitedText = options.waitMs > 0 ? ` after waiting ${Math.round(options.waitMs / 1000)} s` : '';
      throw new LockBusyError(
        `Another gather-agent holds ${path} (${describeOwner(lastOwner)})${waitedText}; nothing was run. ` +
          'Wait for it to finish (or raise --lock-wait / GATHER_LOCK_WAIT_SEC).',
        lastOwner,
      );
    }
    if (!waited) {
      waited = true;
      options.onWait?.(current);
    }
    await sleep(Math.min(options.pollMs ?? 200, Math.max(1, deadline - Date.now())), undefined, options.signal ? { signal: options.signal } : {});
  }
}

function makeLock(path: string, owner: LockOwner, content: string): Lock {
  let released = false;
  // A crash of node itself still releases it: the next contender sees the dead pid. A normal exit removes it.
  const onExit = () => {
    if (released) return;
    try {
      if (readFileSync(path, 'utf8') === content) unlinkSync(path);
    } catch {
      // already gone
    }
  };
  process.once('exit', onExit);
  return {
    path,
    owner,
    async release() {
      if (released) return;
      released = true;
      process.off('exit', onExit);
      const now = await readFile(path, 'utf8').catch(() => undefined);
      if (now === content) await unlink(path).catch(() => undefined);
    },
  };
}
