/**
 * The exporter's options: what a caller may pass, the defaults, and their validation into the settings the
 * rest of the exporter reads (every problem is a ConfigError naming the option and the fix).
 */
import { ConfigError, DURATION_RANGES, describeRange, durationProblem, indexNameProblem, redactText } from '@gather/core';

export const SCOPE = { scope: 'exporter-es' } as const;
const MiB = 1024 * 1024;

export type EsAuth = { apiKey: string | { id: string; api_key: string } } | { username: string; password: string } | { bearer: string };

/** How notable a log line is: spool delivery is `info`, an outage `warn`, lost documents `error`. */
export type EsLogLevel = 'debug' | 'info' | 'warn' | 'error';

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
  /**
   * Directory where the exporter remembers which templates it installed (`es-templates.json`), so a later
   * exporter with the same settings checks them with one request (the agent passes its stateDir).
   */
  stateDir?: string;
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
  /** First retry delay in ms (default 200), doubled at each retry up to `retryMaxDelayMs` (default 5000), with full jitter (core's backoffDelay). */
  retryBaseDelayMs?: number;
  retryMaxDelayMs?: number;
  /** Timeout of one HTTP request in ms (default 30000). */
  requestTimeoutMs?: number;
  /** After Elasticsearch failed, documents go straight to the spool for this long before it is tried again (default 30000). */
  probeIntervalMs?: number;
  /** Gzip request bodies (default false: cheaper on CPU, the usual bottleneck of a small VM). */
  compression?: boolean;
  /** Receives one line per notable event (outage, spooling, rejection) and its level, credentials redacted. */
  log?: (line: string, level: EsLogLevel) => void;
  /**
   * Stop waiting for Elasticsearch (e.g. the agent was told to stop and a hung cluster must not hold it):
   * requests in flight are aborted, and what was not acknowledged, and every later document, is spooled
   * (counted as failed without a spoolDir). The spool is not delivered after it.
   */
  signal?: AbortSignal;
}

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

/** The validated options, every default applied. */
export interface EsSettings {
  nodes: string[];
  /** The nodes without credentials, for messages. */
  where: string;
  /** Every credential string that must never be printed. */
  secrets: string[];
  resultsIndex: string;
  errorsIndex: string;
  runsIndex: string;
  latestIndex: string;
  hostsIndex: string;
  maxBatchDocs: number;
  maxBatchBytes: number;
  maxInFlight: number;
  maxRetries: number;
  retryBaseDelayMs: number;
  retryMaxDelayMs: number;
  requestTimeoutMs: number;
  probeIntervalMs: number;
  spoolMaxBytes: number;
  spoolSegmentBytes: number;
  templatePriority: number;
}

/** Validates the options (a ConfigError for the first problem) and applies the defaults. */
export function resolveOptions(options: EsExporterOptions): EsSettings {
  if (!options || typeof options !== 'object') throw new ConfigError('Missing options: pass { node: "http://..." }.', SCOPE);
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
  const indices = {
    resultsIndex: validateIndex(options.resultsIndex ?? DEFAULTS.resultsIndex, 'resultsIndex'),
    errorsIndex: validateIndex(options.errorsIndex ?? DEFAULTS.errorsIndex, 'errorsIndex'),
    runsIndex: validateIndex(options.runsIndex ?? DEFAULTS.runsIndex, 'runsIndex'),
    latestIndex: validateIndex(options.latestIndex ?? DEFAULTS.latestIndex, 'latestIndex'),
    hostsIndex: validateIndex(options.hostsIndex ?? DEFAULTS.hostsIndex, 'hostsIndex'),
  };
  // Each index has its own template (named after it) and mappings: two kinds in one index would fight.
  const named = Object.entries(indices);
  for (const [i, [option, index]] of named.entries()) {
    const clash = named.slice(i + 1).find(([, other]) => other === index);
    if (clash)
      throw new ConfigError(`Options "${option}" and "${clash[0]}" name the same index "${index}". Give each its own index.`, SCOPE);
  }
  const spoolMaxBytes = positive(options.spoolMaxBytes, DEFAULTS.spoolMaxBytes, 'spoolMaxBytes', 1024);
  const settings: EsSettings = {
    nodes,
    where: urls.map((url) => `${url.protocol}//${url.host}${url.pathname === '/' ? '' : url.pathname}`).join(', '),
    secrets: secretsOf(options, urls),
    ...indices,
    maxBatchDocs: Math.floor(positive(options.maxBatchDocs, DEFAULTS.maxBatchDocs, 'maxBatchDocs')),
    maxBatchBytes: positive(options.maxBatchBytes, DEFAULTS.maxBatchBytes, 'maxBatchBytes', 1024),
    maxInFlight: Math.floor(positive(options.maxInFlight, DEFAULTS.maxInFlight, 'maxInFlight')),
    maxRetries: Math.floor(positive(options.maxRetries, DEFAULTS.maxRetries, 'maxRetries', 0)),
    retryBaseDelayMs: duration(options.retryBaseDelayMs, DEFAULTS.retryBaseDelayMs, 'retryBaseDelayMs'),
    retryMaxDelayMs: duration(options.retryMaxDelayMs, DEFAULTS.retryMaxDelayMs, 'retryMaxDelayMs'),
    requestTimeoutMs: duration(options.requestTimeoutMs, DEFAULTS.requestTimeoutMs, 'requestTimeoutMs'),
    probeIntervalMs: duration(options.probeIntervalMs, DEFAULTS.probeIntervalMs, 'probeIntervalMs'),
    spoolMaxBytes,
    spoolSegmentBytes: positive(
      options.spoolSegmentBytes,
      Math.min(DEFAULTS.spoolSegmentBytes, Math.floor(spoolMaxBytes / 4)),
      'spoolSegmentBytes',
      1,
    ),
    templatePriority: positive(options.templatePriority, DEFAULTS.templatePriority, 'templatePriority', 0),
  };
  const auth = options.auth as Record<string, unknown> | undefined;
  if (auth && !('apiKey' in auth) && !('bearer' in auth) && !('username' in auth && 'password' in auth)) {
    throw new ConfigError('Option "auth" must be { apiKey }, { username, password } or { bearer }.', SCOPE);
  }
  return settings;
}

function validateIndex(name: string, option: string): string {
  const problem = indexNameProblem(name);
  if (problem) throw new ConfigError(`Option "${option}" ${problem}`, SCOPE);
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
