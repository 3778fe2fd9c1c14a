/**
 * The agent's run and daemon locks: core's host lock (shared with the spool and the S3 cache), with the
 * agent's advice to a contender that finds it busy.
 */
import { acquireLock as acquireCoreLock, type AcquireOptions, type Lock, type LockTakeover } from '@gather/core';
import type { Logger } from './logger.js';

export { LockBusyError, ownerAlive, processStartTime, type Lock, type LockOwner, type LockTakeover } from '@gather/core';

export function acquireLock(path: string, options: AcquireOptions): Promise<Lock> {
  return acquireCoreLock(path, {
    busyHint: 'nothing was run. Wait for it to finish (or raise --lock-wait / GATHER_LOCK_WAIT_SEC).',
    scope: 'agent',
    ...options,
  });
}

/** Logs a stale lock taken over (a crashed agent's, one from before a reboot, a reused pid's). */
export const logTakeover =
  (logger: Logger) =>
  ({ path, previous, reason }: LockTakeover): void =>
    logger.warn('took over a stale lock', { lock: path, reason, previous_owner: previous ?? null });
