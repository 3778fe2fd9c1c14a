/** The agent's exit codes; documented in the README and stable across releases. */
export const EXIT = {
  /** Every check ran and every document was delivered. */
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
  /** Results could not be exported (some may be lost). */
  EXPORT_FAILED: 6,
  /** Results were kept in the spool instead of delivered; they are sent on the next run. */
  SPOOLED: 7,
  /** Another gather-agent holds the lock (a run in progress, or a second daemon); nothing was run. */
  LOCKED: 8,
  /** Stopped by SIGINT/SIGTERM (`run`; the daemon exits 0 after a graceful stop). */
  INTERRUPTED: 130,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];
