/**
 * The contracts of gather. Adapters (fetchers, exporters) implement these; optional capabilities are
 * optional members, so a minimal adapter stays small.
 */

/** The categories of checks. A bundle holds checks of both; a run executes one or all. */
export type Category = 'abuse' | 'analytics';
export const CATEGORIES: readonly Category[] = ['abuse', 'analytics'];

/** The JSON types a result value may have. */
export type ResultType = 'boolean' | 'number' | 'string' | 'array' | 'object';
export const RESULT_TYPES: readonly ResultType[] = ['boolean', 'number', 'string', 'array', 'object'];

/** What a check prints: one result per JSON object. */
export interface CheckResult {
  name: string;
  type: ResultType;
  value: unknown;
}

/**
 * Who produced a document, in Elastic Common Schema names: `host.id` (the stable identity: /etc/machine-id,
 * as Beats and Elastic Agent use, or configured) and `host.hostname`.
 */
export interface HostInfo {
  hostname: string;
  id?: string;
}

export interface BundleInfo {
  version: string;
  sha256: string;
}

/** Fields shared by every exported document. */
export interface DocumentBase {
  '@timestamp': string;
  run_id: string;
  host: HostInfo;
  /** ECS `user.name`: the owner of the VM, when configured. */
  user?: { name: string };
  /** ECS `cloud.instance.id`: the cloud's id of the VM, when configured. */
  cloud?: { instance: { id: string } };
  agent: { version: string };
  /** Absent only when the bundle could not be fetched or verified. */
  bundle?: BundleInfo;
}

/**
 * How a result relates to the previous report of the host (differential results): `snapshot` in a full
 * report; `added`, `changed` or `removed` (with its last value) between snapshots. Absent: no diffing.
 */
export type ResultChange = 'added' | 'changed' | 'removed' | 'snapshot';

/** One enriched result, as exported. */
export interface ResultDocument extends DocumentBase, CheckResult {
  change?: ResultChange;
  kind: 'result';
  category: Category;
  /** The 3-letter check id. */
  check: string;
  duration_ms: number;
  bundle: BundleInfo;
}

/** Why a check (or a whole run) produced no usable result. */
export type ErrorReason =
  | 'invalid_output'
  | 'no_output'
  | 'output_too_large'
  | 'timeout'
  | 'spawn_failed'
  | 'killed'
  | 'bundle_refused'
  | 'bundle_replayed'
  | 'bundle_expired'
  | 'fetch_failed'
  /** The run failed for another reason: a bug, or the host (e.g. a full disk); the message says which. */
  | 'run_failed'
  /** Exporter: a document the destination refused for good, kept with the reason (a dead letter). */
  | 'export_rejected'
  /** Exporter: documents dropped from a full spool (lost), reported by a later run. */
  | 'spool_dropped';

/** One error record: a check that misbehaved, or a run that could not happen. */
export interface ErrorDocument extends DocumentBase {
  kind: 'error';
  reason: ErrorReason;
  /** Human-readable explanation, e.g. "timed out after 60 s". */
  message: string;
  category?: Category;
  check?: string;
  exit_code?: number | null;
  signal?: string | null;
  /** Truncated output of the check, to debug it. */
  stdout?: string;
  stderr?: string;
  duration_ms?: number;
}

export type GatherDocument = ResultDocument | ErrorDocument;

/** How a run ended, in a run summary document. */
export type RunOutcome =
  | 'ok'
  | 'checks_failed'
  | 'spooled'
  | 'export_failed'
  /** Every document was handled, but some did not reach their index: refused (dead-lettered), dropped or unreadable. */
  | 'export_incomplete'
  | 'bundle_refused'
  | 'bundle_replayed'
  | 'bundle_expired'
  | 'fetch_failed'
  | 'interrupted'
  | 'failed';

/**
 * One per run, exported after its results and errors (`kind: "run"`): what ran, what it cost, where the
 * documents went. Written by the program embedding core (the agent), which knows the whole run.
 */
export interface RunSummaryDocument extends DocumentBase {
  kind: 'run';
  category: Category | 'all';
  outcome: RunOutcome;
  /** Why the run did not complete (fetch failed, bundle refused, interrupted...), credentials redacted. */
  message?: string;
  checks: { run: number; ok: number; failed: number; timed_out: number };
  results: number;
  errors: number;
  /** Totals of the exporter for this run (this document excluded). */
  export: ExportTotals;
  /** Documents kept in the spool instead of delivered (same as `export.spooled`). */
  spooled: number;
  /** Bundle bytes downloaded (0 when the source said unchanged or the bundle is local). */
  bytes_fetched: number;
  /** Whether the source reported the bundle unchanged since the previous fetch. */
  bundle_unchanged?: boolean;
  duration_ms: number;
  /** Peak resident set size of the agent process so far, bytes. */
  peak_rss_bytes: number;
  /** How the run was started: once (`gather-agent run`) or by the daemon's schedule. */
  trigger?: 'once' | 'schedule';
  /** Daemon only: the run took longer than its schedule interval. */
  overrun?: boolean;
  /**
   * Differential results: results exported per kind of change, and `unchanged` ones left out; `mode` is
   * `snapshot` when (a category of) the run exported a full snapshot.
   */
  changes?: { added: number; changed: number; removed: number; snapshot: number; unchanged: number; mode: 'snapshot' | 'differential' };
  /** The agent's own record of this host, for the one document per host (gather-hosts): its first run. */
  first_seen?: string;
  /** ...and the last run of each category before this one. */
  last_runs?: Partial<Record<Category, { '@timestamp': string; run_id: string; outcome: RunOutcome }>>;
  /** How the checks were contained and how many processes outlived their check (killed). */
  containment?: ContainmentSummary;
}

/** Where a fetcher put the bundle. */
export interface FetchResult {
  /** Absolute path of the bundle file (inside the directory given to `fetch`, or a cache). */
  path: string;
  /** True when the source reported the bundle unchanged since the previous fetch (e.g. HTTP 304). */
  unchanged: boolean;
  /** Body bytes transferred for this fetch (0 when unchanged or read locally). */
  bytesTransferred: number;
  /** Where it came from, for messages (never contains credentials). */
  source: string;
}

export interface FetchOptions {
  /** A private directory (mode 0700) the fetcher may write the bundle into. */
  dir: string;
  signal?: AbortSignal;
}

/** Gets a bundle into a directory. */
export interface Fetcher {
  /** Short adapter name used in messages, e.g. "file" or "s3". */
  readonly name: string;
  fetch(options: FetchOptions): Promise<FetchResult>;
  /** Releases sockets or handles; optional. */
  close?(): Promise<void>;
}

/** What an exporter did with the documents it was given. */
export interface ExportSummary {
  /** Documents acknowledged by the destination. */
  delivered: number;
  /** Documents kept on disk for a later delivery (exporters with a spool). */
  spooled: number;
  /** Documents that could not be delivered nor kept. */
  failed: number;
  /** Re-sends after a transient failure (a document sent three times counts 2); exporters that retry. */
  retried?: number;
  /** Documents the destination rejected for good, kept with the reason in an errors destination. */
  deadLettered?: number;
  /** Documents dropped from a full spool (oldest first); also counted in `failed` when they were this exporter's. */
  dropped?: number;
  /** Documents spooled by an earlier exporter (a previous run) and delivered by this one. */
  recovered?: number;
  /** Lines of a damaged spool segment that could not be read back (lost); also counted in `failed`. */
  unreadable?: number;
}

type SnakeCase<S extends string> = S extends `${infer Head}${infer Tail}`
  ? `${Head extends Uppercase<Head> ? `_${Lowercase<Head>}` : Head}${SnakeCase<Tail>}`
  : S;

/**
 * The exporter's totals as a run summary document carries them: ExportSummary's counts in snake_case
 * (`export.dead_lettered`, ...), every one present (0 when the exporter does not count it). See exportTotals().
 */
export type ExportTotals = { [K in keyof ExportSummary as SnakeCase<K>]-?: number };

/** Sends documents somewhere. Calls are never concurrent for one exporter instance. */
export interface Exporter {
  readonly name: string;
  exportResults(results: readonly ResultDocument[]): Promise<void>;
  exportErrors(errors: readonly ErrorDocument[]): Promise<void>;
  /**
   * Exports the run summary document of a run, after its results and errors. Optional: an exporter without
   * it gets no run summaries (the agent logs them instead).
   */
  exportRunSummary?(summary: RunSummaryDocument): Promise<void>;
  /** Delivers everything buffered so far; resolves with totals since the exporter was created. */
  flush(): Promise<ExportSummary>;
  /** Flushes and releases resources. The exporter is unusable afterwards. */
  close(): Promise<ExportSummary>;
  /** Totals so far, also after a call threw (e.g. the documents it spooled when the index was refused). */
  summary?(): ExportSummary;
}

/** A check as decoded from a verified bundle. */
export interface BundledCheck {
  id: string;
  category: Category;
  script: string;
  /** Per-check timeout override from a `# gather: timeout=N` header, in seconds. */
  timeoutSec?: number;
}

/** What the runner inside a bundle hands to the agent. */
export interface BundlePayload {
  prelude: string;
  checks: BundledCheck[];
}

/** The signed manifest.json of a bundle. */
export interface BundleManifest {
  format: 1;
  version: string;
  created: string;
  /**
   * Increases with every bundle published for a source; agents refuse one lower than the highest they
   * accepted (replay / rollback protection).
   */
  sequence: number;
  /** Bundles past this time (ISO-8601) are refused. */
  expires_at?: string;
  /** Size in bytes of the decoded checks payload, so it can be refused before it is decoded. */
  payload_bytes: number;
  checks: Record<Category, string[]>;
  /** sha256 (hex) of every other member, by member name. */
  files: Record<string, string>;
}

/** How a check's processes are contained: its own cgroup v2, or (fallback) its own process group. */
export type ContainmentMechanism = 'cgroup' | 'pgroup';

/** How the checks of a run were contained, in the run summary. */
export interface ContainmentSummary {
  /** The weakest mechanism any check of the run got (`pgroup` when one check could not get a cgroup). */
  mechanism: ContainmentMechanism;
  /** Processes still alive when their check's main process exited (daemons, `setsid` children...), killed then. */
  killed_after_exit: number;
}

/** Outcome of one `run()`. */
export interface RunSummary {
  run_id: string;
  category: Category | 'all';
  bundle?: BundleInfo;
  checks_run: number;
  checks_ok: number;
  checks_failed: number;
  checks_timed_out: number;
  results: number;
  errors: number;
  duration_ms: number;
  export: ExportSummary;
  /** True when the exporter itself failed; documents may be lost. */
  export_failed: boolean;
  /** What the exporter failure was, credentials redacted by the exporter. */
  export_error?: string;
  fetch: { unchanged: boolean; bytesTransferred: number; source: string } | undefined;
  /** Set once checks were started. */
  containment?: ContainmentSummary;
}

/** What one run() did, also when it could not complete: its summary and, if it did not complete, why. */
export interface RunRecord {
  summary: RunSummary;
  /** Why the run did not complete (a GatherError, or any other error as it was thrown). */
  error?: unknown;
}
