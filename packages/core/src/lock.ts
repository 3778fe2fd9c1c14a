/**
 * A host-wide lock that dies with its process, without native code, shared by the agent's run and daemon
 * locks, the Elasticsearch spool and the S3 bundle cache.
 *
 * The lock file is created atomically with `link()` (so it is never seen half written) and holds the
 * owner's pid, its start time (/proc/<pid>/stat) and the boot id. A lock is stale, and taken over (reported
 * through `onTakeover`), when it was written before the last boot, when its process is gone, when its pid
 * now belongs to another process (same pid, other start time: a killed agent whose pid was reused, or the
 * agent itself after an unclean reboot), or when it is unreadable. Taking over is serialised by a
 * short-lived `<lock>.break` file, so two contenders never both remove a lock and one of them steal the
 * other's fresh one. Nothing follows a symbolic link planted at these names.
 *
 * Its file operations are synchronous: a few bytes in a local state dir take microseconds, where each round
 * trip through libuv's thread pool costs ~1 ms on a small VM, several per lock (tools/bench/startup).
 */
import { randomBytes } from 'node:crypto';
import { linkSync, lstatSync, mkdirSync, readFileSync, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { GatherError } from './errors.js';
import { createExclusiveSync, readFileNoFollowSync } from './safe-fs.js';

export interface LockOwner {
  pid: number;
  /** Field 22 of /proc/<pid>/stat (clock ticks since boot); absent where /proc is not available. */
  start?: string;
  /** /proc/sys/kernel/random/boot_id when the lock was taken; absent where unavailable. */
  boot?: string;
  /** What holds it, e.g. "run abuse" or "daemon". */
  purpose: string;
  since: string;
  token: string;
}

/** Another live process holds the lock (after waiting, if asked to). */
export class LockBusyError extends GatherError {
  override name = 'LockBusyError';
  constructor(
    message: string,
    readonly owner: LockOwner | undefined,
    scope?: string,
  ) {
    super('GATHER_LOCK_BUSY', message, scope ? { scope } : {});
  }
  static override isInstance(error: unknown): error is LockBusyError {
    return GatherError.isInstance(error) && error.code === 'GATHER_LOCK_BUSY';
  }
}

/** A stale lock that was removed so the caller could take it. */
export interface LockTakeover {
  path: string;
  /** The previous owner, when the file was readable. */
  previous: LockOwner | undefined;
  /** Why it was stale, e.g. "its process is gone". */
  reason: string;
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
  /** Called when a stale lock is taken over, e.g. to log it. */
  onTakeover?: (takeover: LockTakeover) => void;
  /** Ends the busy message: what the user can do. Default: wait for it to finish. */
  busyHint?: string;
  /** Package shown in the busy message's prefix. */
  scope?: string;
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

let bootIdCache: string | undefined | null = null;
/** This boot's id, or undefined where the kernel does not expose it. */
export function bootId(): string | undefined {
  if (bootIdCache === null) {
    try {
      bootIdCache = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || undefined;
    } catch {
      bootIdCache = undefined;
    }
  }
  return bootIdCache;
}

/** Why the owner recorded in a lock file is no longer that very process, or undefined while it is. */
export function staleReason(owner: LockOwner): string | undefined {
  const boot = bootId();
  if (owner.boot !== undefined && boot !== undefined && owner.boot !== boot) return 'it was taken before the last reboot';
  try {
    process.kill(owner.pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ESRCH') return 'its process is gone';
    // EPERM: it exists, owned by someone else.
  }
  if (owner.start !== undefined) {
    const start = processStartTime(owner.pid);
    if (start !== undefined && start !== owner.start) return `pid ${owner.pid} now belongs to another process (other start time)`;
  }
  return undefined;
}

/** Whether the owner recorded in a lock file is still that very process. */
export function ownerAlive(owner: LockOwner): boolean {
  return staleReason(owner) === undefined;
}

type ReadOwner = { text: string; owner: LockOwner | undefined } | 'missing' | 'link';

/** The lock file's text and owner (undefined when garbage), 'missing', or 'link' for a planted symbolic link. */
function readOwner(path: string): ReadOwner {
  let text: string;
  try {
    text = readFileNoFollowSync(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return 'missing';
    if (code === 'ELOOP') return 'link';
    throw error;
  }
  // Before the shared lock, the spool's lock held a bare pid.
  if (/^\d+\s*$/.test(text)) return { text, owner: { pid: Number(text), purpose: 'unknown', since: 'unknown', token: '' } };
  try {
    const owner = JSON.parse(text) as LockOwner;
    return { text, owner: Number.isInteger(owner?.pid) && owner.pid > 0 ? owner : undefined };
  } catch {
    return { text, owner: undefined }; // garbage: treated as stale
  }
}

const BREAK_STALE_MS = 10_000;

/** Removes the lock at `path` if it is (still) what was judged stale, under the `.break` mutex; true if removed. */
function breakStale(path: string, judged: string | 'link'): boolean {
  const breakPath = `${path}.break`;
  try {
    createExclusiveSync(breakPath, String(process.pid));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    // Someone else is breaking it; if they died doing so, clear their mutex for the next attempt.
    const info = lstatSync(breakPath, { throwIfNoEntry: false });
    if (info && (info.isSymbolicLink() || Date.now() - info.mtimeMs > BREAK_STALE_MS)) unlinkQuietly(breakPath);
    return false;
  }
  try {
    // Re-read under the mutex: only remove the very content that was judged stale.
    let now: ReadOwner | undefined;
    try {
      now = readOwner(path);
    } catch {
      now = undefined;
    }
    const same = judged === 'link' ? now === 'link' : typeof now === 'object' && now.text === judged;
    if (same) unlinkQuietly(path);
    return same;
  } finally {
    unlinkQuietly(breakPath);
  }
}

function describeOwner(owner: LockOwner | undefined): string {
  return owner ? `pid ${owner.pid}, ${owner.purpose}, since ${owner.since}` : 'unknown owner';
}

/** Takes the lock, waiting up to `waitMs` for a live owner to release it; throws LockBusyError otherwise. */
export async function acquireLock(path: string, options: AcquireOptions): Promise<Lock> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const start = processStartTime(process.pid);
  const boot = bootId();
  const owner: LockOwner = {
    pid: process.pid,
    ...(start !== undefined ? { start } : {}),
    ...(boot !== undefined ? { boot } : {}),
    purpose: options.purpose,
    since: new Date().toISOString(),
    token: randomBytes(8).toString('hex'),
  };
  const content = JSON.stringify(owner);
  const deadline = Date.now() + options.waitMs;
  let waited = false;
  for (;;) {
    options.signal?.throwIfAborted();
    const tmp = `${path}.${process.pid}.${owner.token}`;
    createExclusiveSync(tmp, content);
    try {
      linkSync(tmp, path);
      return makeLock(path, owner, content);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    } finally {
      unlinkQuietly(tmp);
    }
    const read = readOwner(path);
    if (read === 'missing') continue;
    const current = read === 'link' ? undefined : read.owner;
    const reason = read === 'link' ? 'it is a symbolic link' : current === undefined ? 'it is unreadable' : staleReason(current);
    if (reason !== undefined) {
      // Only the very text judged stale may be removed: re-reading here could see a fresh lock that a
      // faster contender has just taken.
      if (breakStale(path, read === 'link' ? 'link' : read.text)) options.onTakeover?.({ path, previous: current, reason });
      else await sleep(20); // another contender is breaking it
      continue;
    }
    if (Date.now() >= deadline) {
      const waitedText = options.waitMs > 0 ? ` after waiting ${Math.round(options.waitMs / 1000)} s` : '';
      throw new LockBusyError(
        `Another gather-agent holds ${path} (${describeOwner(current)})${waitedText}; ${options.busyHint ?? 'wait for it to finish.'}`,
        current,
        options.scope,
      );
    }
    if (!waited) {
      waited = true;
      options.onWait?.(current);
    }
    await sleep(
      Math.min(options.pollMs ?? 200, Math.max(1, deadline - Date.now())),
      undefined,
      options.signal ? { signal: options.signal } : {},
    );
  }
}

// Locks this process holds, removed by one exit listener (a process may hold many: a run, spools, caches).
const heldLocks = new Map<string, string>();

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // Already gone.
  }
}

/** Removes the lock file if it still holds this very content (it may have been taken over meanwhile). */
function removeIfOurs(path: string, content: string): void {
  try {
    if (readFileNoFollowSync(path) === content) unlinkSync(path);
  } catch {
    // already gone
  }
}

function removeHeldLocks(): void {
  for (const [path, content] of heldLocks) removeIfOurs(path, content);
}

function makeLock(path: string, owner: LockOwner, content: string): Lock {
  let released = false;
  // A crash of node itself still releases it: the next contender sees the dead pid. A normal exit removes it.
  if (heldLocks.size === 0) process.once('exit', removeHeldLocks);
  heldLocks.set(path, content);
  return {
    path,
    owner,
    async release() {
      if (released) return;
      released = true;
      heldLocks.delete(path);
      if (heldLocks.size === 0) process.off('exit', removeHeldLocks);
      removeIfOurs(path, content);
    },
  };
}
