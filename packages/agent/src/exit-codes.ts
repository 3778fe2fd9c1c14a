/**
 * The agent's exit codes, documented in the README and stable across releases, and the one place that maps
 * how a run ended (its outcome) to them.
 */
import {
  AbortedError,
  BundleRefusedError,
  ConfigError,
  FetchError,
  LockBusyError,
  UsageError,
  type ExportTotals,
  type RunOutcome,
} from '@gather/core';

export const EXIT = {
  /** Every check ran and every document reached its index. */
  OK: 0,
  /** An unexpected internal error (a bug: please report it). */
  INTERNAL: 1,
  /** Bad command line or configuration; usage or the list of problems is printed. */
  USAGE: 2,
  /** The bundle failed verification; no check was executed. */
  BUNDLE_REFUSED: 3,
  /** The bundle could not be fetched. */
  FETCH_FAILED: 4,
  /** The run completed but some checks failed or timed out (see the error records). */
  CHECKS_FAILED: 5,
  /**
   * Not every document reached its index: the exporter failed, or documents were refused by Elasticsearch
   * (dead-lettered), dropped from a full spool or unreadable in a damaged spool (counted in the run summary).
   */
  EXPORT_FAILED: 6,
  /** Results were kept in the spool instead of delivered; they are sent on the next run. */
  SPOOLED: 7,
  /** Another gather-agent holds the lock (a run in progress, or a second daemon); nothing was run. */
  LOCKED: 8,
  /** Stopped by SIGINT/SIGTERM/SIGHUP (`run`; the daemon exits 0 after a graceful stop). */
  INTERRUPTED: 130,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** The exit code of each way a run can end. */
export const OUTCOME_EXIT: Readonly<Record<RunOutcome, ExitCode>> = {
  ok: EXIT.OK,
  checks_failed: EXIT.CHECKS_FAILED,
  spooled: EXIT.SPOOLED,
  export_failed: EXIT.EXPORT_FAILED,
  export_incomplete: EXIT.EXPORT_FAILED,
  bundle_refused: EXIT.BUNDLE_REFUSED,
  bundle_replayed: EXIT.BUNDLE_REFUSED,
  bundle_expired: EXIT.BUNDLE_REFUSED,
  fetch_failed: EXIT.FETCH_FAILED,
  interrupted: EXIT.INTERRUPTED,
  failed: EXIT.INTERNAL,
};

/** What a run did, as far as its exit code is concerned. */
export interface RunFacts {
  /** Why the run did not complete (thrown by core's run()), if it did not. */
  error?: unknown;
  /** A stop was requested (signal) at any moment of the run, even after the checks. */
  interrupted?: boolean;
  /** The exporter failed (a call threw, e.g. credentials refused or the index unusable). */
  exportFailed?: boolean;
  export?: Pick<ExportTotals, 'spooled' | 'failed' | 'dead_lettered' | 'dropped' | 'unreadable'>;
  checksFailed?: number;
}

/** How a run ended, worst first: a stop, a run that could not happen, a document lost, spooled, a check failed. */
export function outcomeOf(facts: RunFacts): RunOutcome {
  const { error } = facts;
  if (AbortedError.isInstance(error) || facts.interrupted) return 'interrupted';
  if (BundleRefusedError.isInstance(error)) return error.reason;
  if (FetchError.isInstance(error)) return 'fetch_failed';
  if (error !== undefined) return 'failed';
  if (facts.exportFailed) return 'export_failed';
  const e = facts.export;
  if (e && e.failed + e.dead_lettered + e.dropped + e.unreadable > 0) return 'export_incomplete';
  if (e && e.spooled > 0) return 'spooled';
  if ((facts.checksFailed ?? 0) > 0) return 'checks_failed';
  return 'ok';
}

/** The exit code of a run. */
export function exitCodeOf(facts: RunFacts): ExitCode {
  // A configuration problem found only when the run starts (e.g. an adapter package missing).
  if (ConfigError.isInstance(facts.error) || UsageError.isInstance(facts.error)) return EXIT.USAGE;
  if (LockBusyError.isInstance(facts.error)) return EXIT.LOCKED;
  return OUTCOME_EXIT[outcomeOf(facts)];
}

/** The exit code of an error thrown before or instead of a run (usage, configuration, lock, refused bundle, stop...). */
export function exitCodeForError(error: unknown): ExitCode {
  return exitCodeOf({ error });
}
