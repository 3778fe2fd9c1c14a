/**
 * The error family of gather. Every error has a stable `name` and `code` so callers (and the agent's exit
 * codes) can branch on them, and a message that says how to fix the problem.
 *
 * They are recognised by a marker (`Symbol.for('gather.error')`) and their `code`, never by `instanceof`: an
 * agent and an adapter installed as separate packages each load their own copy of core, and an error made by
 * one copy is no instance of the other copy's classes. Use `isGatherError(e)` or `SomeError.isInstance(e)`.
 */

const MARKER = Symbol.for('gather.error');

export type GatherErrorCode =
  | 'GATHER_USAGE'
  | 'GATHER_CONFIG'
  | 'GATHER_BUNDLE_REFUSED'
  | 'GATHER_FETCH'
  | 'GATHER_EXPORT'
  | 'GATHER_PUBLISH'
  | 'GATHER_CHECKS_INVALID'
  | 'GATHER_ABORTED'
  | 'GATHER_LOCK_BUSY';

export interface GatherErrorOptions {
  cause?: unknown;
  /** Which package raised it, shown in the message prefix. */
  scope?: string;
  /** Individual problems when there are several (e.g. every invalid check file). */
  problems?: string[];
}

/** A gather error of any copy of core, optionally with the given code. */
function marked(error: unknown, code?: GatherErrorCode): boolean {
  if (typeof error !== 'object' || error === null || (error as Record<symbol, unknown>)[MARKER] !== true) return false;
  return code === undefined || (error as { code?: unknown }).code === code;
}

export class GatherError extends Error {
  override name = 'GatherError';
  readonly code: GatherErrorCode;
  readonly problems: string[];
  readonly [MARKER] = true;

  constructor(code: GatherErrorCode, message: string, options: GatherErrorOptions = {}) {
    const prefix = options.scope ? `[gather] [${options.scope}] ` : '[gather] ';
    super(prefix + message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.problems = options.problems ?? [];
  }

  static isInstance(error: unknown): error is GatherError {
    return marked(error);
  }
}

/** A bad command line; the CLI prints the problem and a pointer to `--help`, and exits 2. */
export class UsageError extends GatherError {
  override name = 'UsageError';
  /** The command whose `--help` to point to (`undefined`: the program's own). */
  readonly command: string | undefined;
  constructor(message: string, options: GatherErrorOptions & { command?: string } = {}) {
    super('GATHER_USAGE', message, options);
    this.command = options.command;
  }
  static override isInstance(error: unknown): error is UsageError {
    return marked(error, 'GATHER_USAGE');
  }
}

/**
 * How every gather CLI reports a usage error (or a configuration error found while reading its command line):
 * the problem, then one pointer to the help, not the whole usage (which would bury the problem). Exit 2.
 */
export function usageErrorText(program: string, problem: { message: string; command?: string | undefined }): string {
  const help = problem.command ? `${program} ${problem.command} --help` : `${program} --help`;
  return `${program}: ${quotedErrorMessage(problem)}\nRun "${help}" for the options.`;
}

/** Invalid options or configuration; the message names the option and how to set it. */
export class ConfigError extends GatherError {
  override name = 'ConfigError';
  constructor(message: string, options?: GatherErrorOptions) {
    super('GATHER_CONFIG', message, options);
  }
  static override isInstance(error: unknown): error is ConfigError {
    return marked(error, 'GATHER_CONFIG');
  }
}

export type BundleRefusedReason = 'bundle_refused' | 'bundle_replayed' | 'bundle_expired';

/** The bundle failed verification: nothing from it was executed. */
export class BundleRefusedError extends GatherError {
  override name = 'BundleRefusedError';
  /** The error record's reason. */
  readonly reason: BundleRefusedReason = 'bundle_refused';
  constructor(message: string, options?: GatherErrorOptions) {
    super('GATHER_BUNDLE_REFUSED', message, options);
  }
  static override isInstance(error: unknown): error is BundleRefusedError {
    return marked(error, 'GATHER_BUNDLE_REFUSED');
  }
}

/** A validly signed bundle older than one this host already accepted (replay or rollback). */
export class BundleReplayedError extends BundleRefusedError {
  override name = 'BundleReplayedError';
  override readonly reason = 'bundle_replayed';
  static override isInstance(error: unknown): error is BundleReplayedError {
    return BundleRefusedError.isInstance(error) && error.reason === 'bundle_replayed';
  }
}

/** A validly signed bundle past its `expires_at`. */
export class BundleExpiredError extends BundleRefusedError {
  override name = 'BundleExpiredError';
  override readonly reason = 'bundle_expired';
  static override isInstance(error: unknown): error is BundleExpiredError {
    return BundleRefusedError.isInstance(error) && error.reason === 'bundle_expired';
  }
}

export class FetchError extends GatherError {
  override name = 'FetchError';
  constructor(message: string, options?: GatherErrorOptions) {
    super('GATHER_FETCH', message, options);
  }
  static override isInstance(error: unknown): error is FetchError {
    return marked(error, 'GATHER_FETCH');
  }
}

export class ExportError extends GatherError {
  override name = 'ExportError';
  constructor(message: string, options?: GatherErrorOptions) {
    super('GATHER_EXPORT', message, options);
  }
  static override isInstance(error: unknown): error is ExportError {
    return marked(error, 'GATHER_EXPORT');
  }
}

/** checks/ (the bundler's input) has problems; `problems` lists every one. */
export class ChecksInvalidError extends GatherError {
  override name = 'ChecksInvalidError';
  constructor(message: string, options?: GatherErrorOptions) {
    super('GATHER_CHECKS_INVALID', message, options);
  }
  static override isInstance(error: unknown): error is ChecksInvalidError {
    return marked(error, 'GATHER_CHECKS_INVALID');
  }
}

/** The run was interrupted (SIGINT/SIGTERM or an aborted signal). */
export class AbortedError extends GatherError {
  override name = 'AbortedError';
  constructor(message: string, options?: GatherErrorOptions) {
    super('GATHER_ABORTED', message, options);
  }
  static override isInstance(error: unknown): error is AbortedError {
    return marked(error, 'GATHER_ABORTED');
  }
}

/** A gather error made by any installed copy of core. */
export function isGatherError(error: unknown): error is GatherError {
  return marked(error);
}

/** The text of any thrown value. */
export function errorMessage(error: unknown): string {
  return (error as Error)?.message ?? String(error);
}

/**
 * The text of an error about to be quoted after a `[gather] ` of its own (another error's message, a CLI's
 * usage line): without its leading `[gather] `; its scope, e.g. `[file exporter]`, stays.
 */
export function quotedErrorMessage(error: unknown): string {
  return errorMessage(error).replace(/^\[gather\] /, '');
}
