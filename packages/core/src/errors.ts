/**
 * The error family of gather. Every error has a stable `name` and `code` so callers (and the agent's exit
 * codes) can branch on them, and a message that says how to fix the problem.
 */

export type GatherErrorCode =
  | 'GATHER_USAGE'
  | 'GATHER_CONFIG'
  | 'GATHER_BUNDLE_REFUSED'
  | 'GATHER_FETCH'
  | 'GATHER_EXPORT'
  | 'GATHER_PUBLISH'
  | 'GATHER_CHECKS_INVALID'
  | 'GATHER_ABORTED';

export interface GatherErrorOptions {
  cause?: unknown;
  /** Which package raised it, shown in the message prefix. */
  scope?: string;
  /** Individual problems when there are several (e.g. every invalid check file). */
  problems?: string[];
}

export class GatherError extends Error {
  override name = 'GatherError';
  readonly code: GatherErrorCode;
  readonly problems: string[];

  constructor(code: GatherErrorCode, message: string, options: GatherErrorOptions = {}) {
    const prefix = options.scope ? `[gather] [${options.scope}] ` : '[gather] ';
    super(prefix + message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.problems = options.problems ?? [];
  }
}

/** Invalid options or configuration; the message names the option and how to set it. */
export class ConfigError extends GatherError {
  override name = 'ConfigError';
  constructor(message: string, options?: GatherErrorOptions) {
    super('GATHER_CONFIG', message, options);
  }
}

/** The bundle failed verification: nothing from it was executed. */
export class BundleRefusedError extends GatherError {
  override name = 'BundleRefusedError';
  /** The error record's reason. */
  readonly reason: 'bundle_refused' | 'bundle_replayed' | 'bundle_expired' = 'bundle_refused';
  constructor(message: string, options?: GatherErrorOptions) {
    super('GATHER_BUNDLE_REFUSED', message, options);
  }
}

/** A validly signed bundle older than one this host already accepted (replay or rollback). */
export class BundleReplayedError extends BundleRefusedError {
  override name = 'BundleReplayedError';
  override readonly reason = 'bundle_replayed';
}

/** A validly signed bundle past its `expires_at`. */
export class BundleExpiredError extends BundleRefusedError {
  override name = 'BundleExpiredError';
  override readonly reason = 'bundle_expired';
}

export class FetchError extends GatherError {
  override name = 'FetchError';
  constructor(message: string, options?: GatherErrorOptions) {
    super('GATHER_FETCH', message, options);
  }
}

export class ExportError extends GatherError {
  override name = 'ExportError';
  constructor(message: string, options?: GatherErrorOptions) {
    super('GATHER_EXPORT', message, options);
  }
}

/** checks/ (the bundler's input) has problems; `problems` lists every one. */
export class ChecksInvalidError extends GatherError {
  override name = 'ChecksInvalidError';
  constructor(message: string, options?: GatherErrorOptions) {
    super('GATHER_CHECKS_INVALID', message, options);
  }
}

/** The run was interrupted (SIGINT/SIGTERM or an aborted signal). */
export class AbortedError extends GatherError {
  override name = 'AbortedError';
  constructor(message: string, options?: GatherErrorOptions) {
    super('GATHER_ABORTED', message, options);
  }
}

export function isGatherError(error: unknown): error is GatherError {
  return error instanceof GatherError;
}
