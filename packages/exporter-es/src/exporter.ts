import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client, errors as esErrors, type TransportRequestOptions, type TransportRequestParams } from '@elastic/elasticsearch';
import {
  ConfigError,
  DURATION_RANGES,
  describeRange,
  durationProblem,
  createScrubber,
  ExportError,
  redactText,
  type Scrubber,
  type ErrorDocument,
  type ExportSummary,
  type Exporter,
  type ResultDocument,
  type RunSummaryDocument,
} from '@gather/core';
import { dailyIndex, dailyTemplate } from './daily.js';
import { currentStateTemplate, hostEntry, latestEntry, markSnapshot, staleLatestQuery, type BulkOp, type SnapshotMark } from './latest.js';
import { resultSource, templateName } from './mapping.js';
import { Spool, SpoolLockedError, type DropReport, type SpoolRecord, type SpoolSegment } from './spool.js';

const SCOPE = { scope: 'exporter-es' } as const;
/** Why documents were kept after the exporter was told to stop. */
const STOPPED = new Error('the exporter was stopped before Elasticsearch acknowledged them');
const MiB = 1024 * 1024;

export type EsAuth = { apiKey: string | { id: string; api_key: string } } | { username: string; password: string } | { bearer: string };

export interface EsExporterOptions {
  /** URL of an Elasticsearch node, e.g. `https://es.example.com:9200`. Either `node` or `nodes`. */
  node?: string;
  /** URLs of several nodes; requests are spread over them. */
  nodes?: string[];
  auth?: EsAuth;
  /** TLS: the CA (PEM) that signed the cluster's certificate. */
  tls?: { ca?: string | Buffer; rejectUnauthorized?: boolean };
  /** Index of results (default `gather-results`). */
  resultsIndex?: string;
  /** Index of check errors, run errors, rejected documents and spool drop reports (default `gather-errors`). */
  errorsIndex?: string;
  /** Index of run summaries, one document per run (default `gather-runs`). */
  runsIndex?: string;
  /**
   * Also keep the current state (default false; the agent turns it on): gather-latest from differential
   * results, gather-hosts from run summaries. Those writes share the batches, retries and spool of the
   * documents but count in no total (they are not documents of the run; a dropped one is in `dropped`).
   */
  currentState?: boolean;
  /** Current result per host × name, written from differential results (default `gather-latest`). */
  latestIndex?: string;
  /** One document per host, upserted from run summaries (default `gather-hosts`). */
  hostsIndex?: string;
  /** Install the composable index templates on first use (default true; needs `manage_index_templates`). */
  installTemplates?: boolean;
  /** Priority of the installed templates (default 200). */
  templatePriority?: number;
  /** Index settings put into the templates, e.g. `{ number_of_replicas: 0 }`. */
  indexSettings?: Record<string, unknown>;
  /** Directory of the on-disk spool. Without it, documents Elasticsearch cannot take count as failed. */
  spoolDir?: string;
  /** Bound of the spool on disk (default 256 MiB); when full, the oldest segment is dropped (and reported). */
  spoolMaxBytes?: number;
  /** Size at which a new spool segment is started (default 16 MiB, at most spoolMaxBytes / 4). */
  spoolSegmentBytes?: number;
  /** Documents per bulk request (default 1000). */
  maxBatchDocs?: number;
  /** Bytes per bulk request (default 5 MiB). */
  maxBatchBytes?: number;
  /** Bulk requests in flight at once (default 2). */
  maxInFlight?: number;
  /** Retries of a request or of an item answered 429/5xx before the documents are spooled (default 4). */
  maxRetries?: number;
  /** First retry delay in ms (default 200), doubled at each retry up to `retryMaxDelayMs` (default 5000), with jitter. */
  retryBaseDelayMs?: number;
  retryMaxDelayMs?: number;
  /** Timeout of one HTTP request in ms (default 30000). */
  requestTimeoutMs?: number;
  /** After Elasticsearch failed, documents go straight to the spool for this long before it is tried again (default 30000). */
  probeIntervalMs?: number;
  /** Gzip request bodies (default false: cheaper on CPU, the usual bottleneck of a small VM). */
  compression?: boolean;
  /** Receives one line per notable event (outage, spooling, rejection), credentials redacted. */
  log?: (line: string) => void;
  /**
   * Stop waiting for Elasticsearch (e.g. the agent was told to stop and a hung cluster must not hold it):
   * requests in flight are aborted, and what was not acknowledged, and every later document, is spooled
   * (counted as failed without a spoolDir). The spool is not delivered after it.
   */
  signal?: AbortSignal;
}

/** The core summary plus what this exporter also counts. */
export interface EsExportSummary extends ExportSummary {
  retried: number;
  deadLettered: number;
  dropped: number;
  recovered: number;
  unreadable: number;
}

export interface EsExporter extends Exporter {
  /** Exports the run summary to `runsIndex` (id `<run_id>:run`), with the same batching, retries and spool. */
  exportRunSummary(summary: RunSummaryDocument): Promise<void>;
  /** Installs the index templates now (`gather-fleet setup`); throws an ExportError when it cannot. */
  setup(): Promise<void>;
  /** Totals so far, also after a call threw. */
  summary(): EsExportSummary;
}

/** One document on its way: the bulk action target, its deterministic id, its JSON source. */
interface Entry {
  index: string;
  id: string;
  source: string;
  bytes: number;
  /** A dead letter (its failure is final). */
  deadLetter?: boolean;
  /** The bulk operation (default `create`); the current-state indices index and delete. */
  op?: BulkOp;
  /** External version (ms) of an `index`/`delete` in the current-state indices. */
  version?: number;
}

interface BatchOutcome {
  /** Documents of the run acknowledged; the current-state writes (entries with an `op`) are not counted. */
  delivered: number;
  /** Current-state writes acknowledged: not documents of the run, so in no total. */
  currentState?: number;
  deadLettered: number;
  failed: number;
  /** Entries Elasticsearch could not take now (down, auth, kept failing): to spool, or left in the spool. */
  undeliverable: Entry[];
  cause?: unknown;
}

type Failure = 'retry' | 'auth' | 'fatal';

const DEFAULTS = {
  resultsIndex: 'gather-results',
  errorsIndex: 'gather-errors',
  runsIndex: 'gather-runs',
  latestIndex: 'gather-latest',
  hostsIndex: 'gather-hosts',
  templatePriority: 200,
  spoolMaxBytes: 256 * MiB,
  spoolSegmentBytes: 16 * MiB,
  maxBatchDocs: 1000,
  maxBatchBytes: 5 * MiB,
  maxInFlight: 2,
  maxRetries: 4,
  retryBaseDelayMs: 200,
  retryMaxDelayMs: 5000,
  requestTimeoutMs: 30_000,
  probeIntervalMs: 30_000,
} as const;

/** Exponential backoff with jitter: between half and all of min(max, base * 2^(attempt-1)). */
export function backoffDelay(attempt: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

/** Elasticsearch ids are limited to 512 bytes: longer ones are replaced by their sha256, still deterministic. */
export function boundedId(id: string): string {
  return Buffer.byteLength(id) <= 512 ? id : `sha256:${createHash('sha256').update(id).digest('hex')}`;
}

/**
 * Assigns the deterministic document ids: `<run_id>:<check>:<n>`, `<run_id>:<check|run>:error:<n>` and
 * `<run_id>:run` (the run summary, one per run).
 */
export class DocumentIds {
  private readonly runs = new Map<string, Map<string, number>>();

  constructor(private readonly keepRuns = 16) {}

  private next(runId: string, key: string): number {
    let counters = this.runs.get(runId);
    if (!counters) {
      counters = new Map();
      this.runs.set(runId, counters);
      // A long-lived agent (daemon) sees one run after the other: forget old runs.
      if (this.runs.size > this.keepRuns) this.runs.delete(this.runs.keys().next().value!);
    }
    const n = counters.get(key) ?? 0;
    counters.set(key, n + 1);
    return n;
  }

  result(doc: Pick<ResultDocument, 'run_id' | 'check'>): string {
    return boundedId(`${doc.run_id}:${doc.check}:${this.next(doc.run_id, `r:${doc.check}`)}`);
  }

  error(doc: Pick<ErrorDocument, 'run_id' | 'check'>): string {
    const check = doc.check ?? 'run';
    return boundedId(`${doc.run_id}:${check}:error:${this.next(doc.run_id, `e:${check}`)}`);
  }

  /** The run summary: one per run, so no counter (a re-export of the same summary gets the same id). */
  run(doc: Pick<RunSummaryDocument, 'run_id'>): string {
    return boundedId(`${doc.run_id}:run`);
  }
}

const INDEX_NAME = /^[a-z0-9][a-z0-9._-]*$/;

function validateIndex(name: string, option: string): string {
  if (!INDEX_NAME.test(name) || name === '.' || name === '..' || Buffer.byteLength(name) > 255) {
    throw new ConfigError(
      `Option "${option}" is not a valid index name: "${name}". Use lowercase letters, digits, ".", "_" and "-", not starting with "_" or "-".`,
      SCOPE,
    );
  }
  return name;
}

function positive(value: number | undefined, fallback: number, option: string, min = 1): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value < min) throw new ConfigError(`Option "${option}" must be a number >= ${min} (got ${value}).`, SCOPE);
  return value;
}

/** A delay option: within core's shared range (one table for every duration gather takes). */
function duration(value: number | undefined, fallback: number, option: keyof typeof DURATION_RANGES): number {
  if (value === undefined) return fallback;
  const range = DURATION_RANGES[option];
  if (durationProblem(value, range)) throw new ConfigError(`Option "${option}" must be ${describeRange(range)} (got ${value}).`, SCOPE);
  return value;
}

/** Every credential string that must never be printed: raw, and as sent in the Authorization header. */
function secretsOf(options: EsExporterOptions, urls: URL[]): string[] {
  const secrets: string[] = [];
  const auth = options.auth as Record<string, unknown> | undefined;
  if (auth) {
    const apiKey = auth.apiKey;
    if (typeof apiKey === 'string') secrets.push(apiKey);
    else if (apiKey && typeof apiKey === 'object') {
      const { id, api_key } = apiKey as { id: string; api_key: string };
      secrets.push(api_key, Buffer.from(`${id}:${api_key}`).toString('base64'));
    }
    if (typeof auth.password === 'string') {
      secrets.push(auth.password, Buffer.from(`${String(auth.username)}:${auth.password}`).toString('base64'));
    }
    if (typeof auth.bearer === 'string') secrets.push(auth.bearer);
  }
  for (const url of urls) {
    if (url.password) {
      secrets.push(url.password, decodeURIComponent(url.password));
      secrets.push(Buffer.from(`${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`).toString('base64'));
    }
  }
  return secrets.filter((s) => typeof s === 'string' && s.length > 0);
}

/** Short description of a client error: status, ES error type and reason, or the network error. */
function describe(error: unknown): string {
  if (error instanceof esErrors.ResponseError) {
    const body = error.body as { error?: { type?: string; reason?: string } | string } | undefined;
    const detail =
      typeof body?.error === 'object' ? `${body.error.type ?? 'error'}: ${body.error.reason ?? ''}` : typeof body?.error === 'string' ? body.error : '';
    return `HTTP ${error.statusCode ?? '?'}${detail ? ` ${detail}` : ''}`;
  }
  if (error instanceof esErrors.TimeoutError) return 'request timed out';
  if (error instanceof esErrors.RequestAbortedError) return 'request aborted: the exporter was stopped';
  if (error instanceof esErrors.ProductNotSupportedError) return 'the server is not Elasticsearch (no x-elastic-product header)';
  if (error instanceof Error) return error.message;
  return String(error);
}

function classify(error: unknown): Failure {
  if (error instanceof esErrors.ResponseError) {
    const status = error.statusCode ?? 0;
    if (status === 401 || status === 403) return 'auth';
    if (status === 429 || status >= 500 || status === 408) return 'retry';
    return 'fatal';
  }
  if (error instanceof esErrors.ProductNotSupportedError || error instanceof esErrors.ConfigurationError) return 'fatal';
  return 'retry';
}

interface BulkItem {
  status: number;
  error?: { type?: string; reason?: string };
}

interface BulkResponse {
  errors?: boolean;
  items?: Array<Record<string, BulkItem>>;
}

/** Sends gather documents to Elasticsearch with the Bulk API; see the package README. */
class ElasticsearchExporter implements EsExporter {
  readonly name = 'elasticsearch';
  private readonly client: Client;
  private readonly secrets: string[];
  /** Its own credentials scrubbed from every document (the agent also scrubs its whole secret set before). */
  private readonly scrub: Scrubber;
  private readonly where: string;
  private readonly resultsIndex: string;
  private readonly errorsIndex: string;
  private readonly runsIndex: string;
  private readonly latestIndex: string;
  private readonly hostsIndex: string;
  /**
   * Indices whose daily indices carry the alias of their plain name (no concrete index of that name exists):
   * spooled records of an older gather naming the plain index are sent to the daily index instead.
   */
  private readonly plainIndices = new Set<string>();
  /** Snapshots exported: once delivered, the host's older documents of the category leave gather-latest. */
  private readonly snapshots = new Map<string, SnapshotMark>();
  private readonly ids = new DocumentIds();
  private readonly stats: EsExportSummary = { delivered: 0, spooled: 0, failed: 0, retried: 0, deadLettered: 0, dropped: 0, recovered: 0, unreadable: 0 };
  private readonly opts: Required<
    Pick<
      EsExporterOptions,
      | 'maxBatchDocs'
      | 'maxBatchBytes'
      | 'maxInFlight'
      | 'maxRetries'
      | 'retryBaseDelayMs'
      | 'retryMaxDelayMs'
      | 'requestTimeoutMs'
      | 'probeIntervalMs'
      | 'spoolMaxBytes'
      | 'spoolSegmentBytes'
      | 'templatePriority'
    >
  >;

  private batch: Entry[] = [];
  private batchBytes = 0;
  private readonly inflight = new Set<Promise<void>>();
  private started: Promise<void> | undefined;
  private spool: Spool | undefined;
  private ready = false;
  /** Elasticsearch is considered down until then (ms since epoch); 0 when it is not. */
  private openUntil = 0;
  private openedAt = 0;
  private lastOutage: unknown;
  /** A failure no retry fixes (credentials, a mapping gather cannot use): every call reports it. */
  private fatal: ExportError | undefined;
  /** A failure to report once, at the end of the current call. */
  private pendingError: ExportError | undefined;
  private closed = false;

  constructor(private readonly options: EsExporterOptions) {
    const nodes = options.nodes?.length ? options.nodes : options.node ? [options.node] : [];
    if (nodes.length === 0) {
      throw new ConfigError('Missing option "node". Pass the Elasticsearch URL (e.g. http://127.0.0.1:9200) or set GATHER_ES_URL.', SCOPE);
    }
    const urls = nodes.map((node) => {
      try {
        const url = new URL(node);
        if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('not http(s)');
        return url;
      } catch {
        throw new ConfigError(`Option "node" must be an http(s) URL (got "${redactText(node)}").`, SCOPE);
      }
    });
    this.secrets = secretsOf(options, urls);
    this.scrub = createScrubber(this.secrets);
    this.where = urls.map((url) => `${url.protocol}//${url.host}${url.pathname === '/' ? '' : url.pathname}`).join(', ');
    this.resultsIndex = validateIndex(options.resultsIndex ?? DEFAULTS.resultsIndex, 'resultsIndex');
    this.errorsIndex = validateIndex(options.errorsIndex ?? DEFAULTS.errorsIndex, 'errorsIndex');
    this.runsIndex = validateIndex(options.runsIndex ?? DEFAULTS.runsIndex, 'runsIndex');
    this.latestIndex = validateIndex(options.latestIndex ?? DEFAULTS.latestIndex, 'latestIndex');
    this.hostsIndex = validateIndex(options.hostsIndex ?? DEFAULTS.hostsIndex, 'hostsIndex');
    // Each index has its own template (named after it) and mappings: two kinds in one index would fight.
    const named = [
      ['resultsIndex', this.resultsIndex],
      ['errorsIndex', this.errorsIndex],
      ['runsIndex', this.runsIndex],
      ['latestIndex', this.latestIndex],
      ['hostsIndex', this.hostsIndex],
    ] as const;
    for (const [i, [option, index]] of named.entries()) {
      const clash = named.slice(i + 1).find(([, other]) => other === index);
      if (clash) throw new ConfigError(`Options "${option}" and "${clash[0]}" name the same index "${index}". Give each its own index.`, SCOPE);
    }
    const spoolMaxBytes = positive(options.spoolMaxBytes, DEFAULTS.spoolMaxBytes, 'spoolMaxBytes', 1024);
    this.opts = {
      maxBatchDocs: Math.floor(positive(options.maxBatchDocs, DEFAULTS.maxBatchDocs, 'maxBatchDocs')),
      maxBatchBytes: positive(options.maxBatchBytes, DEFAULTS.maxBatchBytes, 'maxBatchBytes', 1024),
      maxInFlight: Math.floor(positive(options.maxInFlight, DEFAULTS.maxInFlight, 'maxInFlight')),
      maxRetries: Math.floor(positive(options.maxRetries, DEFAULTS.maxRetries, 'maxRetries', 0)),
      retryBaseDelayMs: duration(options.retryBaseDelayMs, DEFAULTS.retryBaseDelayMs, 'retryBaseDelayMs'),
      retryMaxDelayMs: duration(options.retryMaxDelayMs, DEFAULTS.retryMaxDelayMs, 'retryMaxDelayMs'),
      requestTimeoutMs: duration(options.requestTimeoutMs, DEFAULTS.requestTimeoutMs, 'requestTimeoutMs'),
      probeIntervalMs: duration(options.probeIntervalMs, DEFAULTS.probeIntervalMs, 'probeIntervalMs'),
      spoolMaxBytes,
      spoolSegmentBytes: positive(options.spoolSegmentBytes, Math.min(DEFAULTS.spoolSegmentBytes, Math.floor(spoolMaxBytes / 4)), 'spoolSegmentBytes', 1),
      templatePriority: positive(options.templatePriority, DEFAULTS.templatePriority, 'templatePriority', 0),
    };
    const auth = options.auth as Record<string, unknown> | undefined;
    if (auth && !('apiKey' in auth) && !('bearer' in auth) && !('username' in auth && 'password' in auth)) {
      throw new ConfigError('Option "auth" must be { apiKey }, { username, password } or { bearer }.', SCOPE);
    }
    this.client = new Client({
      nodes,
      ...(options.auth ? { auth: options.auth } : {}),
      ...(options.tls ? { tls: options.tls } : {}),
      maxRetries: 0,
      requestTimeout: this.opts.requestTimeoutMs,
      compression: options.compression ?? false,
      // Never put bodies or headers into client errors' messages beyond what we describe ourselves.
      redaction: { type: 'remove' },
    });
  }

  summary(): EsExportSummary {
    return { ...this.stats };
  }

  async setup(): Promise<void> {
    if (this.closed) throw new ExportError('The exporter is closed; create a new one.', SCOPE);
    if (await this.ensureReady()) return;
    throw this.fatal ?? new ExportError(`Elasticsearch at ${this.where} is unavailable (${this.text(describe(this.lastOutage))}).`, SCOPE);
  }

  async exportResults(results: readonly ResultDocument[]): Promise<void> {
    await this.begin();
    for (const doc of results) {
      const clean = this.scrub.value(doc);
      const source = resultSource(clean);
      this.add({ index: dailyIndex(this.resultsIndex, doc['@timestamp']), id: this.ids.result(doc), source, bytes: 0 });
      if (this.options.currentState) {
        const latest = latestEntry(clean, this.latestIndex);
        if (latest) this.add({ ...latest, bytes: 0 });
        markSnapshot(this.snapshots, doc);
      }
      if (this.batch.length >= this.opts.maxBatchDocs || this.batchBytes >= this.opts.maxBatchBytes) await this.dispatch(this.takeBatch());
    }
    this.end();
  }

  async exportErrors(errors: readonly ErrorDocument[]): Promise<void> {
    await this.begin();
    for (const doc of errors) {
      const source = JSON.stringify(this.scrub.value(doc));
      this.add({ index: dailyIndex(this.errorsIndex, doc['@timestamp']), id: this.ids.error(doc), source, bytes: 0 });
      if (this.batch.length >= this.opts.maxBatchDocs || this.batchBytes >= this.opts.maxBatchBytes) await this.dispatch(this.takeBatch());
    }
    this.end();
  }

  /** The run summary, after the run's results and errors: same batches, ids, retries and spool as they. */
  async exportRunSummary(summary: RunSummaryDocument): Promise<void> {
    await this.begin();
    const clean = this.scrub.value(summary);
    const source = JSON.stringify(clean);
    this.add({ index: dailyIndex(this.runsIndex, summary['@timestamp']), id: this.ids.run(summary), source, bytes: 0 });
    const host = this.options.currentState ? hostEntry(clean, this.hostsIndex) : undefined;
    if (host) this.add({ ...host, bytes: 0 });
    if (this.batch.length >= this.opts.maxBatchDocs || this.batchBytes >= this.opts.maxBatchBytes) await this.dispatch(this.takeBatch());
    this.end();
  }

  async flush(): Promise<ExportSummary> {
    const flushStarted = Date.now();
    await this.begin();
    if (this.batch.length > 0) await this.dispatch(this.takeBatch());
    await this.settle();
    // Deliver the spool, unless Elasticsearch failed during this very flush (it was just tried).
    if (this.spool && !this.spool.empty && !this.fatal && this.openedAt < flushStarted) {
      this.openUntil = 0;
      await this.drain();
    }
    this.end();
    return this.summary();
  }

  async close(): Promise<ExportSummary> {
    if (this.closed) return this.summary();
    let failure: unknown;
    try {
      await this.flush();
      await this.removeStaleLatest();
    } catch (error) {
      failure = error;
    }
    this.closed = true;
    await this.spool?.close().catch(() => undefined);
    await this.client.close().catch(() => undefined);
    if (failure) throw failure;
    return this.summary();
  }

  /**
   * After a delivered snapshot: deletes the host's gather-latest documents of that category the snapshot did
   * not write (results that vanished while the agent had no state). A snapshot still in the spool waits.
   */
  private async removeStaleLatest(): Promise<void> {
    if (this.snapshots.size === 0 || this.fatal || this.isDown() || this.stats.spooled > 0) return;
    const marks = [...this.snapshots.values()];
    this.snapshots.clear();
    try {
      await this.removeStale(marks);
    } catch (error) {
      this.log(`Could not remove stale documents from ${this.latestIndex} (${this.text(describe(error))}); the next snapshot does it.`);
    }
  }

  private async removeStale(marks: SnapshotMark[]): Promise<void> {
    await this.request({ method: 'POST', path: `/${this.latestIndex}/_refresh` }, { ignore: [404] });
    for (const mark of marks) {
      const found = await this.request<{ hits?: { hits?: Array<{ _id: string }> } }>(
        { method: 'POST', path: `/${this.latestIndex}/_search`, body: { size: 10_000, _source: false, query: staleLatestQuery(mark) } },
        { ignore: [404] },
      );
      const stale = (found.hits?.hits ?? []).map((hit): Entry => ({ index: this.latestIndex, id: hit._id, op: 'delete', version: mark.version, source: '{}', bytes: 0 }));
      // Best effort, not counted (not documents of the run): if it fails, the next snapshot does it again.
      if (stale.length > 0) await this.send(stale);
    }
  }

  // ------------------------------------------------------------------ call lifecycle

  private async begin(): Promise<void> {
    if (this.closed) throw new ExportError('The exporter is closed; create a new one.', SCOPE);
    this.started ??= this.start();
    await this.started;
  }

  /** First use: open the spool and deliver what an earlier run left in it, before any new document. */
  private async start(): Promise<void> {
    if (this.options.spoolDir) {
      try {
        this.spool = await Spool.open(this.options.spoolDir, {
          maxBytes: this.opts.spoolMaxBytes,
          segmentBytes: this.opts.spoolSegmentBytes,
          onLockTakeover: ({ path, previous, reason }) =>
            this.log(`Took over the stale spool lock ${path} (${reason}; previous owner pid ${previous?.pid ?? 'unknown'}).`),
        });
      } catch (error) {
        this.fatal = new ExportError(
          error instanceof SpoolLockedError
            ? `Cannot use spoolDir: ${this.text(error.message)}. Give every agent process its own spoolDir.`
            : `Cannot use spoolDir ${this.options.spoolDir}: ${this.text(describe(error))}. Make it a writable directory (mode 0700) of the agent's user.`,
          SCOPE,
        );
        return;
      }
      if (!this.spool.empty) await this.drain();
    }
  }

  /** Ends a call: reports a failure that happened during it, and keeps reporting a fatal one. */
  private end(): void {
    const error = this.pendingError ?? this.fatal;
    this.pendingError = undefined;
    if (error) throw error;
  }

  private add(entry: Entry): void {
    entry.bytes = entry.source.length + entry.id.length + entry.index.length + 40;
    this.batch.push(entry);
    this.batchBytes += entry.bytes;
  }

  private takeBatch(): Entry[] {
    const batch = this.batch;
    this.batch = [];
    this.batchBytes = 0;
    return batch;
  }

  /** Waits until every bulk request in flight has completed (and its documents are accounted for). */
  private async settle(): Promise<void> {
    while (this.inflight.size > 0) await Promise.all([...this.inflight]);
  }

  /** Told to stop waiting for Elasticsearch: nothing more is sent. */
  private get stopped(): boolean {
    return this.options.signal?.aborted ?? false;
  }

  /** Every request to Elasticsearch: none starts after a stop, and one in flight is aborted by it. */
  private request<T = unknown>(params: TransportRequestParams, options: TransportRequestOptions = {}): Promise<T> {
    if (this.stopped) return Promise.reject(STOPPED);
    return this.client.transport.request<T>(params, this.options.signal ? { ...options, signal: this.options.signal } : options) as Promise<T>;
  }

  private isDown(): boolean {
    return this.openUntil > Date.now();
  }

  private markDown(cause: unknown): void {
    const wasDown = this.isDown();
    this.lastOutage = cause;
    this.openedAt = Date.now();
    this.openUntil = this.openedAt + this.opts.probeIntervalMs;
    if (!wasDown) {
      this.log(
        `Elasticsearch at ${this.where} is unavailable (${this.text(describe(cause))}); ` +
          (this.spool ? `spooling to ${this.spool.dir} and retrying in ${Math.round(this.opts.probeIntervalMs / 1000)} s.` : 'no spoolDir: documents are lost.'),
      );
    }
  }

  // ------------------------------------------------------------------ sending

  /** Sends one batch of new documents, or spools it when Elasticsearch is known to be down. */
  private async dispatch(batch: Entry[]): Promise<void> {
    if (batch.length === 0) return;
    if (this.stopped) return this.keep(batch, STOPPED);
    if (this.fatal) return this.keep(batch, this.fatal);
    if (this.spool && !this.spool.empty && !this.isDown()) {
      // The spool goes first, in order.
      await this.settle();
      await this.drain();
    }
    if (this.fatal) return this.keep(batch, this.fatal);
    if (this.isDown()) return this.keep(batch, this.lastOutage);
    if (!(await this.ensureReady())) return this.keep(batch, this.fatal ?? this.lastOutage);
    while (this.inflight.size >= this.opts.maxInFlight) await Promise.race(this.inflight);
    const task: Promise<void> = this.send(batch)
      .then(async (outcome) => {
        this.stats.delivered += outcome.delivered;
        this.stats.deadLettered += outcome.deadLettered;
        this.stats.failed += outcome.failed;
        if (outcome.undeliverable.length > 0) await this.keep(outcome.undeliverable, outcome.cause);
      })
      .catch((error: unknown) => {
        // Only a bug gets here (send() accounts for every failure); never lose the documents silently.
        this.stats.failed += batch.length;
        this.pendingError ??= new ExportError(`Unexpected failure sending ${batch.length} documents: ${this.text(describe(error))}.`, SCOPE);
      })
      .finally(() => this.inflight.delete(task));
    this.inflight.add(task);
  }

  /** Keeps documents Elasticsearch could not take: in the spool, or counted as failed without one. */
  private async keep(entries: Entry[], cause: unknown): Promise<void> {
    const n = entries.length;
    if (!this.spool) {
      this.stats.failed += n;
      if (!this.fatal) {
        this.pendingError ??= new ExportError(
          `${n} documents could not be delivered to Elasticsearch at ${this.where} (${this.text(describe(cause))}). ` +
            'Check that it is running and reachable; set spoolDir to keep documents on disk during outages.',
          SCOPE,
        );
      }
      return;
    }
    const lines = entries.map(
      (e) =>
        `{"index":${JSON.stringify(e.index)},"id":${JSON.stringify(e.id)},${e.deadLetter ? '"dead_letter":true,' : ''}` +
        `${e.op ? `"op":"${e.op}",` : ''}${e.version !== undefined ? `"version":${e.version},` : ''}"doc":${e.source}}`,
    );
    let outcome;
    try {
      outcome = await this.spool.append(lines);
    } catch (error) {
      this.stats.failed += n;
      this.pendingError ??= new ExportError(
        `${n} documents could neither be delivered (${this.text(describe(cause))}) nor spooled to ${this.spool.dir} (${this.text(describe(error))}). Free disk space or fix the directory's permissions.`,
        SCOPE,
      );
      return;
    }
    for (const { segment, docs, currentState } of outcome.dropped) this.accountDrop(segment, docs, currentState);
    if (!outcome.stored) {
      this.stats.failed += n;
      this.stats.dropped += n;
      this.pendingError ??= new ExportError(
        `${n} documents are larger than spoolMaxBytes (${this.opts.spoolMaxBytes}) and could not be spooled. Raise spoolMaxBytes or lower maxBatchBytes.`,
        SCOPE,
      );
      return;
    }
    // Current-state writes travel in the spool too, but count in no total (they are not documents of the run).
    this.stats.spooled += entries.filter((e) => !e.op).length;
    if (cause === STOPPED) this.log(`Stopped before Elasticsearch acknowledged ${n} documents: spooled to ${this.spool.dir}, delivered by the next run.`);
  }

  private accountDrop(segment: SpoolSegment, docs: number, currentState: number): void {
    this.stats.dropped += docs;
    if (segment.own) {
      // Current-state writes were never counted as spooled (nor as anything else): only the run's documents move.
      this.stats.spooled -= docs - currentState;
      this.stats.failed += docs - currentState;
    }
    this.log(`Spool full (spoolMaxBytes ${this.opts.spoolMaxBytes}): dropped its oldest segment with ${docs} documents; an error document will report it.`);
  }

  /** Installs the templates of the daily indices (once); Elasticsearch creates each day's index on first write. */
  private async ensureReady(): Promise<boolean> {
    if (this.ready) return true;
    if (this.stopped) return false;
    if (this.options.installTemplates === false) {
      for (const index of [this.resultsIndex, this.errorsIndex, this.runsIndex]) this.plainIndices.add(index);
      this.ready = true;
      return true;
    }
    try {
      const settings = this.options.indexSettings ? { settings: this.options.indexSettings } : {};
      const templates: Array<[string, Record<string, unknown>]> = [];
      for (const [index, kind] of [
        [this.resultsIndex, 'results'],
        [this.errorsIndex, 'errors'],
        [this.runsIndex, 'runs'],
      ] as const) {
        // An index of the plain name (an older gather wrote there) keeps its data; the alias is left out.
        const plain = await this.request<Record<string, unknown>>({ method: 'GET', path: `/${index}/_settings` }, { ignore: [404] });
        const alias = !Object.keys(plain ?? {}).includes(index);
        if (alias) this.plainIndices.add(index);
        templates.push([index, dailyTemplate({ index, kind, priority: this.opts.templatePriority, alias, ...settings })]);
      }
      for (const [index, kind] of this.options.currentState ? ([
        [this.latestIndex, 'latest'],
        [this.hostsIndex, 'hosts'],
      ] as const) : []) {
        templates.push([index, currentStateTemplate({ index, kind, priority: this.opts.templatePriority, ...settings })]);
      }
      for (const [index, body] of templates) {
        // Read first: thousands of agents start runs, and a template PUT is a cluster state update.
        const installed = await this.request<{ index_templates?: Array<{ index_template?: Record<string, unknown> }> }>(
          { method: 'GET', path: `/_index_template/${templateName(index)}` },
          { ignore: [404] },
        );
        const current = installed.index_templates?.[0]?.index_template;
        const upToDate = (current?._meta as { hash?: string } | undefined)?.hash === (body._meta as { hash: string }).hash;
        if (!upToDate) await this.request({ method: 'PUT', path: `/_index_template/${templateName(index)}`, body });
      }
      this.ready = true;
      return true;
    } catch (error) {
      if (!this.stopped) this.fail(error, 'installing the index templates');
      return false;
    }
  }

  /** Records a request failure: Elasticsearch down (retry later) or fatal (credentials, refused request). */
  private fail(error: unknown, doing: string): void {
    const kind = classify(error);
    if (kind === 'retry') {
      this.markDown(error);
      return;
    }
    const detail = this.text(describe(error));
    const status = error instanceof esErrors.ResponseError ? error.statusCode : undefined;
    let message: string;
    if (kind === 'auth' && status === 401) {
      message =
        `Elasticsearch at ${this.where} rejected the credentials while ${doing} (${detail}). ` +
        'Check the auth option (apiKey, username/password or bearer token): it must be valid and not expired.';
    } else if (kind === 'auth') {
      message =
        `Elasticsearch at ${this.where} refused access while ${doing} (${detail}). Grant the credentials the privileges ` +
        `create_doc and create_index on ${this.resultsIndex}-*, ${this.errorsIndex}-* and ${this.runsIndex}-*, index on ${this.latestIndex} and ${this.hostsIndex}, and manage_index_templates ` +
        '(or set installTemplates: false and install the templates yourself).';
    } else {
      message = `Elasticsearch at ${this.where} refused the request while ${doing} (${detail}).`;
    }
    this.fatal ??= new ExportError(
      message + (this.spool ? ` Documents are kept in the spool (${this.spool.dir}) until a run succeeds.` : ''),
      SCOPE,
    );
    this.log(this.fatal.message);
  }

  private async bulk(entries: readonly Entry[]): Promise<BulkResponse> {
    let body = '';
    for (const e of entries) {
      const op = e.op ?? 'create';
      const version = e.version !== undefined ? `,"version":${e.version},"version_type":"external"` : '';
      body += `{"${op}":{"_index":${JSON.stringify(e.index)},"_id":${JSON.stringify(e.id)}${version}}}\n${op === 'delete' ? '' : `${e.source}\n`}`;
    }
    return this.request<BulkResponse>(
      {
        method: 'POST',
        path: '/_bulk',
        querystring: { filter_path: 'errors,items.*.status,items.*.error.type,items.*.error.reason' },
        bulkBody: body,
      },
      { maxRetries: 0 },
    );
  }

  /**
   * Sends entries with `create` and deterministic ids: 201 and 409 (already there) are delivered; 429/5xx
   * items and failed requests are retried with backoff; other item errors are dead-lettered.
   */
  private async send(entries: Entry[]): Promise<BatchOutcome> {
    const outcome: BatchOutcome = { delivered: 0, deadLettered: 0, failed: 0, undeliverable: [] };
    const rejected: Array<{ entry: Entry; item: BulkItem }> = [];
    let todo = entries;
    for (let attempt = 0; todo.length > 0; attempt++) {
      if (attempt > 0) {
        this.stats.retried += todo.length;
        await sleep(backoffDelay(attempt, this.opts.retryBaseDelayMs, this.opts.retryMaxDelayMs), undefined, this.options.signal ? { signal: this.options.signal } : {}).catch(() => undefined);
        if (this.fatal || this.stopped) {
          outcome.undeliverable.push(...todo);
          outcome.cause = this.fatal ?? STOPPED;
          break;
        }
      }
      let response: BulkResponse;
      try {
        response = await this.bulk(todo);
      } catch (error) {
        if (this.stopped) {
          outcome.undeliverable.push(...todo);
          outcome.cause = STOPPED;
          break;
        }
        // A timeout already waited requestTimeoutMs: retry it once at most, then spool (a black-holed node).
        const limit = error instanceof esErrors.TimeoutError ? Math.min(1, this.opts.maxRetries) : this.opts.maxRetries;
        if (classify(error) === 'retry' && attempt < limit) continue;
        this.fail(error, 'sending documents');
        outcome.undeliverable.push(...todo);
        outcome.cause = error;
        break;
      }
      const items = response.items ?? [];
      if (!response.errors && items.length === todo.length) {
        const currentWrites = todo.filter((e) => e.op).length;
        outcome.delivered += todo.length - currentWrites;
        outcome.currentState = (outcome.currentState ?? 0) + currentWrites;
        break;
      }
      const retry: Entry[] = [];
      let lastRetryable: BulkItem | undefined;
      todo.forEach((entry, i) => {
        const item = items[i] && Object.values(items[i])[0];
        const status = item?.status ?? 503;
        // 409: already there (create) or a newer version is (external versioning); 404: nothing to delete.
        if (status < 300 || status === 409 || (status === 404 && entry.op === 'delete')) {
          if (entry.op) outcome.currentState = (outcome.currentState ?? 0) + 1;
          else outcome.delivered++;
        }
        else if (status === 429 || status >= 500) {
          retry.push(entry);
          lastRetryable = item ?? { status, error: { type: 'missing_item', reason: 'no answer for this document' } };
        } else rejected.push({ entry, item: item! });
      });
      todo = retry;
      if (todo.length > 0 && attempt >= this.opts.maxRetries) {
        const cause = new Error(`${todo.length} documents kept failing with HTTP ${lastRetryable?.status} ${lastRetryable?.error?.type ?? ''}: ${lastRetryable?.error?.reason ?? ''}`);
        this.markDown(cause);
        outcome.undeliverable.push(...todo);
        outcome.cause = cause;
        break;
      }
    }
    if (rejected.length > 0) {
      const letters: Entry[] = [];
      let example = '';
      for (const { entry, item } of rejected) {
        const reason = `HTTP ${item.status} ${item.error?.type ?? 'error'}: ${item.error?.reason ?? ''}`;
        example ||= reason;
        if (entry.deadLetter) {
          outcome.failed++;
          this.log(`Elasticsearch rejected the dead letter ${entry.id} (${this.text(reason)}); the document is lost.`);
        } else letters.push(this.deadLetter(entry, item));
      }
      if (letters.length > 0) {
        this.log(`Elasticsearch rejected ${letters.length} documents (e.g. ${this.text(example)}); written to ${this.errorsIndex} with the reason.`);
        const sent = await this.send(letters);
        outcome.deadLettered += sent.delivered;
        outcome.failed += sent.failed + sent.deadLettered;
        if (sent.undeliverable.length > 0) {
          outcome.undeliverable.push(...sent.undeliverable);
          outcome.cause ??= sent.cause;
        }
      }
    }
    return outcome;
  }

  /** The error document that keeps a rejected document and the reason, for the errors index. */
  private deadLetter(entry: Entry, item: BulkItem): Entry {
    let original: unknown;
    try {
      original = JSON.parse(entry.source);
    } catch {
      original = entry.source;
    }
    const o = (typeof original === 'object' && original !== null ? original : {}) as Record<string, unknown>;
    const str = (value: unknown) => (typeof value === 'string' && value.length <= 1024 ? value : undefined);
    const host = (typeof o.host === 'object' && o.host !== null ? o.host : {}) as Record<string, unknown>;
    const agent = (typeof o.agent === 'object' && o.agent !== null ? o.agent : {}) as Record<string, unknown>;
    const reasonText = `${item.error?.type ?? 'error'}: ${item.error?.reason ?? 'rejected'}`;
    const doc = {
      kind: 'error',
      '@timestamp': new Date().toISOString(),
      run_id: str(o.run_id) ?? 'unknown',
      host: { hostname: str(host.hostname) ?? 'unknown', ...(str(host.id) ? { id: str(host.id) } : {}) },
      agent: { version: str(agent.version) ?? 'unknown' },
      ...(str(o.check) ? { check: str(o.check) } : {}),
      ...(str(o.category) ? { category: str(o.category) } : {}),
      ...(str(o.name) ? { name: str(o.name) } : {}),
      reason: 'export_rejected',
      message: `Elasticsearch rejected document ${entry.id} for index ${entry.index} (HTTP ${item.status} ${reasonText}). The document is in "original".`,
      original_index: entry.index,
      original_id: entry.id,
      original,
      rejection: { status: item.status, type: item.error?.type ?? 'error', reason: item.error?.reason ?? '' },
    };
    const source = JSON.stringify(this.scrub.value(doc));
    return { index: dailyIndex(this.errorsIndex, doc['@timestamp']), id: boundedId(`${entry.id}:rejected`), source, bytes: source.length, deadLetter: true };
  }

  // ------------------------------------------------------------------ spool delivery

  /** Delivers the spool in order: drop reports, then segments oldest first; stops at the first outage. */
  private async drain(): Promise<void> {
    const spool = this.spool;
    if (!spool || spool.empty || this.fatal || this.stopped) return;
    if (!(await this.ensureReady())) return;
    for (const report of spool.pendingReports()) {
      const outcome = await this.send([this.dropReportEntry(report)]);
      if (outcome.undeliverable.length > 0) return;
      await spool.removeReport(report);
    }
    for (const segment of await spool.pending()) {
      let records: SpoolRecord[];
      let corrupt: number;
      try {
        ({ records, corrupt } = await spool.read(segment));
      } catch (error) {
        this.pendingError ??= new ExportError(`Cannot read the spool segment ${segment.file}: ${this.text(describe(error))}.`, SCOPE);
        return;
      }
      const entries = records.map((r): Entry => {
        const source = JSON.stringify(r.doc);
        const { dead_letter: deadLetter, op, version } = r as { dead_letter?: boolean; op?: BulkOp; version?: number };
        // A record spooled by a gather before daily indices names the plain index: written there, it would make a
        // concrete index of the name the daily indices' alias needs (and every new document of the day is refused).
        const index = this.plainIndices.has(r.index) ? dailyIndex(r.index, r.doc?.['@timestamp']) : r.index;
        return { index, id: r.id, source, bytes: source.length + r.id.length + 60, ...(deadLetter ? { deadLetter } : {}), ...(op ? { op } : {}), ...(version !== undefined ? { version } : {}) };
      });
      const total: BatchOutcome = { delivered: 0, deadLettered: 0, failed: 0, undeliverable: [] };
      const batches: Entry[][] = [];
      let current: Entry[] = [];
      let bytes = 0;
      for (const entry of entries) {
        current.push(entry);
        bytes += entry.bytes;
        if (current.length >= this.opts.maxBatchDocs || bytes >= this.opts.maxBatchBytes) {
          batches.push(current);
          current = [];
          bytes = 0;
        }
      }
      if (current.length > 0) batches.push(current);
      const running = new Set<Promise<void>>();
      for (const batch of batches) {
        if (total.undeliverable.length > 0 || this.fatal || this.stopped) break;
        while (running.size >= this.opts.maxInFlight) await Promise.race(running);
        const task: Promise<void> = this.send(batch)
          .then((o) => {
            total.delivered += o.delivered;
            total.currentState = (total.currentState ?? 0) + (o.currentState ?? 0);
            total.deadLettered += o.deadLettered;
            total.failed += o.failed;
            total.undeliverable.push(...o.undeliverable);
          })
          .finally(() => running.delete(task));
        running.add(task);
      }
      await Promise.all(running);
      if (total.undeliverable.length > 0 || this.fatal || this.stopped || total.delivered + (total.currentState ?? 0) + total.deadLettered + total.failed < entries.length) {
        // Left in the spool: what was delivered answers 409 next time.
        return;
      }
      await spool.remove(segment);
      const currentWrites = entries.filter((e) => e.op).length;
      const count = (segment.records ?? entries.length + corrupt) - currentWrites;
      if (segment.own) {
        this.stats.spooled -= count;
        this.stats.delivered += total.delivered;
      } else this.stats.recovered += total.delivered;
      this.stats.deadLettered += total.deadLettered;
      this.stats.failed += total.failed + corrupt;
      this.stats.unreadable += corrupt;
      if (corrupt > 0) this.log(`${corrupt} unreadable lines in the damaged spool segment ${segment.file} were skipped: those documents are lost.`);
      this.log(`Delivered spool segment ${segment.file} (${total.delivered} documents).`);
    }
  }

  private dropReportEntry(report: DropReport): Entry {
    const sample = (report.sample ?? {}) as { run_id?: unknown; host?: unknown; agent?: unknown };
    const doc = {
      kind: 'error',
      '@timestamp': report.at,
      run_id: typeof sample.run_id === 'string' ? sample.run_id : 'spool',
      host: sample.host ?? { hostname: 'unknown' },
      agent: sample.agent ?? { version: 'unknown' },
      reason: 'spool_dropped',
      message:
        `The spool was full (spoolMaxBytes ${this.opts.spoolMaxBytes}): segment ${report.segment} with ${report.docs} documents ` +
        `(ids ${report.first_id ?? '?'} .. ${report.last_id ?? '?'}) was dropped undelivered. Raise spoolMaxBytes or fix the outage sooner.`,
      dropped_docs: report.docs,
      spool_segment: report.segment,
    };
    const source = JSON.stringify(this.scrub.value(doc));
    return { index: dailyIndex(this.errorsIndex, report.at), id: report.id, source, bytes: source.length, deadLetter: true };
  }

  // ------------------------------------------------------------------ messages

  private text(message: string): string {
    return redactText(message, this.secrets);
  }

  private log(line: string): void {
    this.options.log?.(`[gather] [exporter-es] ${this.text(line)}`);
  }
}

/** Creates the Elasticsearch exporter; nothing is sent before the first export call. */
export function createEsExporter(options: EsExporterOptions): EsExporter {
  if (!options || typeof options !== 'object') throw new ConfigError('Missing options: pass { node: "http://..." }.', SCOPE);
  return new ElasticsearchExporter(options);
}
