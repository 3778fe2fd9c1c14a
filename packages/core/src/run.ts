import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync } from 'node:fs';
import { rm, rmdir } from 'node:fs/promises';
import { availableParallelism, hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { forEachLimited, slots } from './_pool.js';
import { loadBundlePayload, parsePublicKey } from './bundle.js';
import { monotonicMs } from './clock.js';
import {
  AbortedError,
  BundleRefusedError,
  ConfigError,
  errorMessage,
  ExportError,
  FetchError,
  isGatherError,
  quotedErrorMessage,
} from './errors.js';
import { fetchVerifiedBundle, isHostResourceError, type FetchProgress } from './fetch-verified.js';
import { openContainment, type ContainmentMode } from './contain.js';
import { executeCheck, type CheckOutcome } from './execute.js';
import { enterIdleIoClass } from './io-priority.js';
import { detached, parseCheckOutput } from './output.js';
import type { SequenceState } from './sequence.js';
import type {
  BundleInfo,
  BundledCheck,
  Category,
  DocumentBase,
  ErrorDocument,
  ErrorReason,
  Exporter,
  Fetcher,
  HostInfo,
  ResultDocument,
  RunRecord,
  RunSummary,
} from './types.js';
import { CATEGORIES } from './types.js';
import { CORE_VERSION } from './version.js';

export interface RunOptions {
  fetcher: Fetcher;
  exporter: Exporter;
  category: Category | 'all';
  /** PEM (SPKI) of the ed25519 key the bundle must be signed with. */
  publicKey: string | Buffer;
  /** Checks run at once. Default: number of CPUs. */
  concurrency?: number;
  /** Default per-check timeout in seconds (a check may override it). Default 60. */
  timeoutSec?: number;
  /** Stdout kept per check; more is an error. Default 1 MiB. */
  stdoutCapBytes?: number;
  /** Stderr kept per check; the rest is discarded. Default 64 KiB. */
  stderrCapBytes?: number;
  /** Niceness of the checks (0-19; a check never runs less nice than the agent). Default 0: unchanged. */
  nice?: number;
  /**
   * Run checks in the idle I/O scheduling class. Default false. The class is set once on this process (the
   * ioprio_set() system call, or `ionice -c3 -p <pid>` where Node has no FFI: see enterIdleIoClass) and
   * inherited by every check it starts.
   */
  ionice?: boolean;
  /** How checks are contained: `auto` (cgroup where possible, else process group), `cgroup` or `pgroup`. */
  containment?: ContainmentMode;
  /** ECS `user.name` of every document. */
  username?: string;
  /** ECS `cloud.instance.id` of every document. */
  instanceId?: string;
  /** ECS `host.id`: the stable identity of the host (e.g. /etc/machine-id). */
  hostId?: string;
  /** Defaults to os.hostname(). */
  hostname?: string;
  /** Version of the program embedding core, exported as `agent.version`. */
  agentVersion?: string;
  runId?: string;
  /** Parent of the private temp dir. Default: os.tmpdir(). */
  tmpRoot?: string;
  /** Stops the run: running checks are killed, what was collected is exported, temp files removed. */
  signal?: AbortSignal;
  /** Also stop on SIGINT/SIGTERM (default true). Embedders that handle signals themselves pass false. */
  handleProcessSignals?: boolean;
  /** Called after each check, e.g. to print a table row. */
  onCheckDone?: (event: CheckDoneEvent) => void;
  /**
   * Tuning values for the checks (thresholds, search bounds), e.g. `{ CPU_MIN_SEC: '600' }`: each is passed to
   * every check as `GATHER_<NAME>`. Names are `[A-Z][A-Z0-9_]*`; `CATEGORY` and `CHECK` are the runner's own.
   */
  checkSettings?: Readonly<Record<string, string>>;
  /** Path of bash. Default "bash". */
  bash?: string;
  /**
   * The highest bundle sequence accepted from this source: an older bundle is refused (`bundle_replayed`), and
   * the sequence of a bundle about to run is recorded. Without it there is no replay protection.
   */
  sequenceState?: SequenceState;
  /** Clock for timestamps and bundle expiry; tests pin it. */
  now?: () => Date;
}

export interface CheckDoneEvent {
  check: BundledCheck;
  results: ResultDocument[];
  error: ErrorDocument | undefined;
  durationMs: number;
}

export const DEFAULTS = {
  timeoutSec: 60,
  stdoutCapBytes: 1024 * 1024,
  stderrCapBytes: 64 * 1024,
} as const;

/** Output kept in an error record: enough to debug, small enough to index. */
const ERROR_OUTPUT_CHARS = 4096;

// Only these reach a check: the agent's own settings and secrets (AWS_*, GATHER_*, ES credentials) never do.
const PASSED_ENV = /^(PATH|HOME|LANG|LANGUAGE|TERM|LC_[A-Z_]+)$/;
/** A check setting's name; GATHER_CATEGORY and GATHER_CHECK stay the runner's. */
export const CHECK_SETTING_NAME = /^(?!(CATEGORY|CHECK|RUN_DIR)$)[A-Z][A-Z0-9_]{0,63}$/;

/**
 * The whole environment of a check. `runDir` is the run's private work dir (root-only, removed with the run):
 * passed as GATHER_RUN_DIR so that the checks of one run can share work done once (common's `run_shared`,
 * e.g. one walk of the home dirs instead of one per check).
 */
export function checkEnvironment(
  parent: NodeJS.ProcessEnv,
  category: Category,
  check: string,
  settings: Readonly<Record<string, string>> = {},
  runDir?: string,
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(parent)) {
    if (value !== undefined && PASSED_ENV.test(name)) env[name] = value;
  }
  for (const [name, value] of Object.entries(settings)) {
    if (CHECK_SETTING_NAME.test(name)) env[`GATHER_${name}`] = value;
  }
  env.PATH ??= '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
  env.GATHER_CATEGORY = category;
  env.GATHER_CHECK = check;
  if (runDir !== undefined) env.GATHER_RUN_DIR = runDir;
  return env;
}

/** A short copy: error records must not keep a check's whole output alive (a slice would). */
function truncate(text: string): string {
  return detached(text.length > ERROR_OUTPUT_CHARS ? `${text.slice(0, ERROR_OUTPUT_CHARS)}…[truncated]` : text);
}

function formatMiB(bytes: number): string {
  return bytes % (1024 * 1024) === 0 ? `${bytes / 1024 / 1024} MiB` : `${bytes} bytes`;
}

interface Classified {
  results: ReturnType<typeof parseCheckOutput>['results'];
  error?: { reason: ErrorReason; message: string };
}

/** Turns what a check did into results and at most one error record. */
export function classifyOutcome(outcome: CheckOutcome, timeoutSec: number, stdoutCapBytes: number): Classified {
  if (outcome.spawnError)
    return { results: [], error: { reason: 'spawn_failed', message: `could not start bash: ${outcome.spawnError.message}` } };
  if (outcome.stdoutOverflow) {
    return {
      results: [],
      error: { reason: 'output_too_large', message: `stdout exceeded the ${formatMiB(stdoutCapBytes)} cap; the check was stopped` },
    };
  }
  const parsed = parseCheckOutput(outcome.stdout);
  if (outcome.timedOut) return { results: parsed.results, error: { reason: 'timeout', message: `timed out after ${timeoutSec} s` } };
  if (outcome.aborted) return { results: parsed.results, error: { reason: 'killed', message: 'stopped because the run was interrupted' } };
  if (parsed.problemCount > 0) {
    const more = parsed.problemCount > parsed.problems.length ? ` (and ${parsed.problemCount - parsed.problems.length} more)` : '';
    return { results: parsed.results, error: { reason: 'invalid_output', message: parsed.problems.join('; ') + more } };
  }
  if (parsed.values === 0) {
    const how = outcome.signal ? `was killed by ${outcome.signal}` : `exited with code ${outcome.exitCode}`;
    return { results: [], error: { reason: 'no_output', message: `${how} and printed no result` } };
  }
  if (outcome.signal) return { results: parsed.results, error: { reason: 'killed', message: `was killed by ${outcome.signal}` } };
  return { results: parsed.results };
}

/**
 * The documents of one check: its results and at most one error record. Whatever the check printed, this
 * does not throw: a failure to process the output becomes the check's error record, so one check can never
 * change another's results or how the run ends (beyond "checks failed").
 */
export function checkDocuments(
  check: BundledCheck,
  outcome: CheckOutcome,
  context: { base: DocumentBase; bundle: BundleInfo; timeoutSec: number; stdoutCapBytes: number },
): { results: ResultDocument[]; error: ErrorDocument | undefined } {
  let classified: Classified;
  try {
    classified = classifyOutcome(outcome, context.timeoutSec, context.stdoutCapBytes);
  } catch (caught) {
    classified = {
      results: [],
      error: { reason: 'invalid_output', message: `the output could not be processed: ${(caught as Error)?.message ?? String(caught)}` },
    };
  }
  const results: ResultDocument[] = classified.results.map((result) => ({
    kind: 'result',
    ...context.base,
    bundle: context.bundle,
    category: check.category,
    check: check.id,
    duration_ms: outcome.durationMs,
    ...result,
  }));
  const error: ErrorDocument | undefined = classified.error && {
    kind: 'error',
    ...context.base,
    category: check.category,
    check: check.id,
    reason: classified.error.reason,
    message: classified.error.message,
    exit_code: outcome.exitCode,
    signal: outcome.signal,
    stdout: truncate(outcome.stdout),
    stderr: truncate(outcome.stderr),
    duration_ms: outcome.durationMs,
  };
  return { results, error };
}

/**
 * The whole job: fetch the bundle, verify it, run the checks of a category, export results and error
 * records. The private temp dir is removed on every path, including errors and SIGINT/SIGTERM.
 * Throws when the run could not complete (see runRecorded): a GatherError (BundleRefusedError, FetchError,
 * AbortedError, ConfigError), or any other error as it is (a bug, or the host failing, e.g. a full disk).
 * An exporter failure does not throw: the summary says `export_failed` so the caller can still report what ran.
 */
export async function run(options: RunOptions): Promise<RunSummary> {
  const record = await runRecorded(options);
  if (record.error !== undefined) throw record.error;
  return record.summary;
}

/**
 * run(), without throwing: the run record, i.e. the summary of what happened (fetch, bundle, checks,
 * documents, export totals) and, when the run could not complete, why. The error is exported first as an
 * error record when the exporter still works (`bundle_refused`, `fetch_failed`, ..., or `run_failed` for any
 * other error, which is kept as it is: a bug, or the host failing, never a fetch failure).
 */
export async function runRecorded(options: RunOptions): Promise<RunRecord> {
  const started = monotonicMs();
  const now = options.now ?? (() => new Date());
  const runId = options.runId ?? randomUUID();
  const category = options.category;
  const summary: RunSummary = {
    run_id: runId,
    category,
    checks_run: 0,
    checks_ok: 0,
    checks_failed: 0,
    checks_timed_out: 0,
    results: 0,
    errors: 0,
    duration_ms: 0,
    export: { delivered: 0, spooled: 0, failed: 0 },
    export_failed: false,
    fetch: undefined,
  };
  let settings;
  try {
    settings = runSettings(options);
  } catch (error) {
    return { summary, error };
  }
  const { publicKey, concurrency, timeoutSec, stdoutCapBytes, stderrCapBytes } = settings;

  const host: HostInfo = {
    hostname: options.hostname ?? hostname(),
    ...(options.hostId ? { id: options.hostId } : {}),
  };
  const owner = {
    ...(options.username ? { user: { name: options.username } } : {}),
    ...(options.instanceId ? { cloud: { instance: { id: options.instanceId } } } : {}),
  };
  const agent = { version: options.agentVersion ?? CORE_VERSION };
  let bundle: BundleInfo | undefined;
  const base = (): DocumentBase => ({
    '@timestamp': now().toISOString(),
    run_id: runId,
    host,
    ...owner,
    agent,
    ...(bundle ? { bundle } : {}),
  });

  const abort = new AbortController();
  const onParentAbort = () => abort.abort();
  options.signal?.addEventListener('abort', onParentAbort, { once: true });
  if (options.signal?.aborted) abort.abort();
  const onProcessSignal = () => abort.abort();
  const handleSignals = options.handleProcessSignals ?? true;
  if (handleSignals) {
    process.on('SIGINT', onProcessSignal);
    process.on('SIGTERM', onProcessSignal);
  }

  // Exporter calls are serialised: adapters may assume one call at a time.
  let exportChain: Promise<void> = Promise.resolve();
  let exportFailure: unknown;
  const enqueueExport = (task: () => Promise<void>) => {
    exportChain = exportChain.then(task).catch((error) => {
      exportFailure ??= error;
    });
    return exportChain;
  };

  // Started now, awaited before the first check: where it is the `ionice` program, it runs while the bundle
  // is verified.
  const idleIoClass = options.ionice ? enterIdleIoClass() : undefined;
  let tmp: string | undefined;
  try {
    // The temp and work dirs are made synchronously: microseconds each, where a thread-pool round trip costs
    // ~1 ms on a small VM (tools/bench/startup).
    tmp = mkdtempSync(join(options.tmpRoot ?? tmpdir(), 'gather-'));
    const progress: FetchProgress = {};
    try {
      await fetchVerifiedBundle(
        {
          fetcher: options.fetcher,
          dir: tmp,
          publicKey,
          signal: abort.signal,
          now,
          ...(options.sequenceState ? { sequenceState: options.sequenceState } : {}),
        },
        progress,
      );
    } finally {
      const { fetched, verified } = progress;
      if (fetched) summary.fetch = { unchanged: fetched.unchanged, bytesTransferred: fetched.bytesTransferred, source: fetched.source };
      // A refused (replayed, expired) bundle whose signature checked out is named in its error record.
      if (verified) summary.bundle = bundle = { version: verified.manifest.version, sha256: verified.sha256 };
    }
    const verified = progress.verified!;
    // Decoded in memory: nothing of the bundle is written to disk (the checks reach bash through a pipe).
    const payload = loadBundlePayload(verified);
    if (abort.signal.aborted) throw new AbortedError('Run interrupted before the checks ran.');
    await options.sequenceState?.accept(verified.manifest, verified.sha256);

    const checks = payload.checks.filter((check) => category === 'all' || check.category === category);
    const workDir = join(tmp, 'work');
    mkdirSync(workDir, { mode: 0o700 });
    await idleIoClass;

    const containment = openContainment({ mode: options.containment ?? 'auto', runId });
    summary.containment = { mechanism: containment.mechanism, killed_after_exit: 0 };
    // Up to `concurrency` more checks than run are spawned and moved into their cgroups ahead (a cgroup
    // migration waits for the kernel), so that setup overlaps the running checks; the slots keep
    // `concurrency` checks running at once.
    const running = slots(concurrency);
    try {
      await forEachLimited(checks, concurrency * 2, async (check) => {
        if (abort.signal.aborted) return;
        const checkTimeoutSec = check.timeoutSec ?? timeoutSec;
        const outcome = await executeCheck(check, {
          prelude: payload.prelude,
          timeoutMs: checkTimeoutSec * 1000,
          stdoutCapBytes,
          stderrCapBytes,
          env: checkEnvironment(process.env, check.category, check.id, options.checkSettings, workDir),
          cwd: workDir,
          signal: abort.signal,
          containment,
          slot: running,
          ...(options.bash ? { bash: options.bash } : {}),
          ...(options.nice ? { nice: options.nice } : {}),
        });
        summary.containment!.killed_after_exit += outcome.killedAfterExit;
        if (outcome.containment === 'pgroup') summary.containment!.mechanism = 'pgroup';
        const { results, error } = checkDocuments(check, outcome, {
          base: base(),
          bundle: bundle!,
          timeoutSec: checkTimeoutSec,
          stdoutCapBytes,
        });
        summary.checks_run++;
        summary.results += results.length;
        if (error) {
          summary.errors++;
          if (error.reason === 'timeout') summary.checks_timed_out++;
          else summary.checks_failed++;
        } else summary.checks_ok++;
        try {
          options.onCheckDone?.({ check, results, error, durationMs: outcome.durationMs });
        } catch {
          // A display callback (e.g. the table) must not change what is exported nor how the run ends.
        }
        await enqueueExport(async () => {
          if (results.length > 0) await options.exporter.exportResults(results);
          if (error) await options.exporter.exportErrors([error]);
        });
      });
    } finally {
      containment.close();
    }
    if (abort.signal.aborted)
      throw new AbortedError(
        `Run interrupted after ${summary.checks_run} of ${checks.length} checks; the results collected so far were exported.`,
      );
  } catch (error) {
    // Only the fetcher's own failures are fetch failures (see fetchVerifiedBundle); anything else unexpected
    // is kept as it is, a bug or the host failing, which the caller reports as such (the agent: exit 1).
    const reason: ErrorReason = BundleRefusedError.isInstance(error)
      ? error.reason
      : FetchError.isInstance(error)
        ? 'fetch_failed'
        : 'run_failed';
    const message = isGatherError(error)
      ? error.message
      : isHostResourceError(error)
        ? `The host failed the run: ${errorMessage(error)}`
        : `Unexpected error: ${errorMessage(error)}`;
    summary.errors++;
    await enqueueExport(() =>
      options.exporter.exportErrors([{ kind: 'error', ...base(), ...(category === 'all' ? {} : { category }), reason, message }]),
    );
    await wrapUp();
    return { summary, error };
  }
  await wrapUp();
  return { summary };

  /** The end of every run: the temp dir goes while the exporter flushes (independent of each other). */
  async function wrapUp(): Promise<void> {
    await Promise.all([cleanUp(), finishExport()]);
  }

  async function cleanUp(): Promise<void> {
    options.signal?.removeEventListener('abort', onParentAbort);
    if (handleSignals) {
      process.off('SIGINT', onProcessSignal);
      process.off('SIGTERM', onProcessSignal);
    }
    if (tmp) await removeTempDir(tmp);
  }

  async function finishExport(): Promise<void> {
    await exportChain;
    try {
      summary.export = await options.exporter.flush();
    } catch (error) {
      exportFailure ??= error;
    }
    if (exportFailure !== undefined) {
      summary.export_failed = true;
      summary.export_error = new ExportError(`Exporting to ${options.exporter.name} failed: ${quotedErrorMessage(exportFailure)}`).message;
    }
    summary.duration_ms = Math.round(monotonicMs() - started);
  }
}

/**
 * Removes the run's temp dir. Usually it holds only the checks' empty work dir: two rmdir() calls then, not
 * the recursive walk that anything the checks (or the fetcher) left there needs.
 */
async function removeTempDir(dir: string): Promise<void> {
  try {
    await rmdir(join(dir, 'work'));
    await rmdir(dir);
  } catch {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The options of a run, checked before anything starts. */
function runSettings(options: RunOptions) {
  const category = options.category;
  if (category !== 'all' && !CATEGORIES.includes(category)) {
    throw new ConfigError(`Unknown category "${String(category)}". Use one of: ${[...CATEGORIES, 'all'].join(', ')}.`);
  }
  const publicKey = parsePublicKey(options.publicKey);
  const concurrency = options.concurrency ?? availableParallelism();
  const timeoutSec = options.timeoutSec ?? DEFAULTS.timeoutSec;
  const stdoutCapBytes = options.stdoutCapBytes ?? DEFAULTS.stdoutCapBytes;
  const stderrCapBytes = options.stderrCapBytes ?? DEFAULTS.stderrCapBytes;
  for (const [name, value] of Object.entries({ concurrency, timeoutSec, stdoutCapBytes, stderrCapBytes })) {
    if (!Number.isFinite(value) || value <= 0) throw new ConfigError(`Option "${name}" must be a positive number (got ${value}).`);
  }
  return { publicKey, concurrency, timeoutSec, stdoutCapBytes, stderrCapBytes };
}
