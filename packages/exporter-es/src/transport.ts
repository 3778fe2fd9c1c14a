/**
 * Every request the exporter makes to Elasticsearch, over node:http(s) with keep-alive, and what a failed one
 * means: retry later (down, overloaded), credentials, or fatal (a request no retry fixes).
 *
 * Why not @elastic/elasticsearch: the exporter needs a handful of plain requests (bulk, templates, a search),
 * and loading that client (its API surface, undici, OpenTelemetry, apache-arrow) costs ~40 MB of RSS on every
 * agent run, half the agent's 80 MB budget; node:http costs ~5 MB. What the client did for us is here: the
 * auth header, TLS options, a timeout per request, abort, gzip bodies, the product check, nodes in turn.
 */
import type * as Http from 'node:http';
import type * as Https from 'node:https';
import { createRequire } from 'node:module';
import type * as Zlib from 'node:zlib';
import type { EsAuth, EsExporterOptions, EsSettings } from './options.js';

/**
 * A built-in module as its CommonJS object, loaded when first needed. Not `import ... from 'node:http'`: an ES
 * import of node:http evaluates its WebSocket/MessageEvent getters, which load Node's bundled undici (~15 MB
 * of RSS); TLS and zlib are loaded only for an https node or compression.
 */
function builtin<T>(id: string): T {
  return (process.getBuiltinModule?.(id) ?? createRequire(process.execPath)(id)) as T;
}

/** Why documents were kept after the exporter was told to stop. */
export const STOPPED = new Error('the exporter was stopped before Elasticsearch acknowledged them');

export interface EsRequest {
  method: 'GET' | 'PUT' | 'POST' | 'DELETE' | 'HEAD';
  path: string;
  querystring?: Record<string, string>;
  /** A JSON body. */
  body?: unknown;
  /** An NDJSON body (the Bulk API). */
  bulkBody?: string;
}

export type Failure = 'retry' | 'auth' | 'fatal';

/** Elasticsearch answered with an error status. */
export class ResponseError extends Error {
  override name = 'ResponseError';
  constructor(
    readonly statusCode: number,
    readonly body: unknown,
    /** How long the server asked to be left alone (its Retry-After header), on a 429 or 503. */
    readonly retryAfterMs?: number,
  ) {
    super(`Elasticsearch answered HTTP ${statusCode}`);
  }
}

/** The longest wait a Retry-After is honoured for: longer, and a full spool would start dropping documents. */
export const MAX_RETRY_AFTER_MS = 15 * 60_000;

/**
 * A Retry-After header in ms: delay-seconds or an HTTP-date (RFC 9110 10.2.3), at most MAX_RETRY_AFTER_MS;
 * undefined when absent or unreadable. Elasticsearch itself sends none; a proxy or hosted service may.
 */
export function parseRetryAfter(header: string | undefined, now = Date.now()): number | undefined {
  const value = header?.trim();
  if (!value) return undefined;
  const ms = /^\d+$/.test(value) ? Number(value) * 1000 : Date.parse(value) - now;
  return Number.isNaN(ms) ? undefined : Math.min(MAX_RETRY_AFTER_MS, Math.max(0, ms));
}

/** The wait a failed request's server asked for, if any. */
export function retryAfterOf(error: unknown): number | undefined {
  return error instanceof ResponseError ? error.retryAfterMs : undefined;
}

export class TimeoutError extends Error {
  override name = 'TimeoutError';
}

export class RequestAbortedError extends Error {
  override name = 'RequestAbortedError';
}

/** A 2xx answer without `x-elastic-product: Elasticsearch`: not Elasticsearch (or a proxy in the way). */
export class ProductNotSupportedError extends Error {
  override name = 'ProductNotSupportedError';
}

interface Node {
  url: URL;
  agent: Http.Agent;
  request: typeof Http.request;
}

export class EsTransport {
  private readonly nodes: Node[];
  private readonly authorization: string | undefined;
  private readonly timeoutMs: number;
  private readonly compression: boolean;
  private turn = 0;

  constructor(
    settings: EsSettings,
    options: EsExporterOptions,
    private readonly signal: AbortSignal | undefined,
  ) {
    this.timeoutMs = settings.requestTimeoutMs;
    this.compression = options.compression ?? false;
    this.nodes = settings.nodes.map((node) => {
      const url = new URL(node);
      if (url.protocol === 'https:') {
        const https = builtin<typeof Https>('node:https');
        return { url, agent: new https.Agent({ keepAlive: true, ...(options.tls ?? {}) }), request: https.request };
      }
      const http = builtin<typeof Http>('node:http');
      return { url, agent: new http.Agent({ keepAlive: true }), request: http.request };
    });
    const first = this.nodes[0]!.url;
    this.authorization = authorizationOf(options.auth, first);
  }

  /** Told to stop waiting for Elasticsearch: nothing more is sent. */
  get stopped(): boolean {
    return this.signal?.aborted ?? false;
  }

  /** None starts after a stop, and one in flight is aborted by it; statuses in `ignore` answer their body. */
  request<T = unknown>(params: EsRequest, options: { ignore?: number[] } = {}): Promise<T> {
    if (this.stopped) return Promise.reject(STOPPED);
    const node = this.nodes[this.turn++ % this.nodes.length]!;
    const base = node.url.pathname.replace(/\/+$/, '');
    const query = params.querystring ? `?${new URLSearchParams(params.querystring).toString()}` : '';
    let body: Buffer | undefined;
    if (params.bulkBody !== undefined) body = Buffer.from(params.bulkBody);
    else if (params.body !== undefined) body = Buffer.from(JSON.stringify(params.body));
    // The media types of the 8.x client: Elasticsearch 9 answers as 8 did (REST API compatibility).
    const json = 'application/vnd.elasticsearch+json; compatible-with=8';
    const headers: Record<string, string> = { accept: `${json},text/plain`, 'user-agent': 'gather-exporter-es' };
    if (this.authorization) headers.authorization = this.authorization;
    if (body) {
      headers['content-type'] = params.bulkBody !== undefined ? 'application/vnd.elasticsearch+x-ndjson; compatible-with=8' : json;
      headers.accept = json;
      if (this.compression) {
        body = builtin<typeof Zlib>('node:zlib').gzipSync(body);
        headers['content-encoding'] = 'gzip';
      }
      headers['content-length'] = String(body.length);
    }
    return new Promise<T>((resolve, reject) => {
      const req = node.request({
        protocol: node.url.protocol,
        hostname: node.url.hostname.replace(/^\[|\]$/g, ''),
        port: node.url.port,
        method: params.method,
        path: `${base}${params.path}${query}`,
        headers,
        agent: node.agent,
      });
      const timer = setTimeout(() => req.destroy(new TimeoutError(`request timed out after ${this.timeoutMs} ms`)), this.timeoutMs);
      const onAbort = () => req.destroy(new RequestAbortedError('request aborted'));
      this.signal?.addEventListener('abort', onAbort, { once: true });
      const done = () => {
        clearTimeout(timer);
        this.signal?.removeEventListener('abort', onAbort);
      };
      req.on('error', (error) => {
        done();
        reject(error);
      });
      req.on('response', (res) => {
        readBody(res).then(
          (text) => {
            done();
            try {
              resolve(answer<T>(res, text, options.ignore));
            } catch (error) {
              reject(error);
            }
          },
          (error: unknown) => {
            done();
            reject(error);
          },
        );
      });
      req.end(body);
    });
  }

  async close(): Promise<void> {
    for (const node of this.nodes) node.agent.destroy();
  }
}

/** The Authorization header: from the auth option, else the URL's userinfo (as the Elasticsearch client did). */
function authorizationOf(auth: EsAuth | undefined, url: URL): string | undefined {
  if (auth && 'apiKey' in auth) {
    const key = auth.apiKey;
    return `ApiKey ${typeof key === 'string' ? key : Buffer.from(`${key.id}:${key.api_key}`).toString('base64')}`;
  }
  if (auth && 'bearer' in auth) return `Bearer ${auth.bearer}`;
  if (auth && 'username' in auth) return `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}`;
  if (url.username || url.password) {
    return `Basic ${Buffer.from(`${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`).toString('base64')}`;
  }
  return undefined;
}

function readBody(res: Http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on('data', (chunk: Buffer) => chunks.push(chunk));
    res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    res.on('error', reject);
    res.on('aborted', () => reject(new Error('the response was cut off')));
  });
}

/** The parsed body of a response, or the error it stands for. */
function answer<T>(res: Http.IncomingMessage, text: string, ignore: number[] = []): T {
  const status = res.statusCode ?? 0;
  let body: unknown = text;
  if (text.length > 0 && String(res.headers['content-type'] ?? '').includes('json')) {
    try {
      body = JSON.parse(text);
    } catch {
      if (status < 300) throw new Error(`Elasticsearch answered HTTP ${status} with a body that is not JSON`);
    }
  }
  if (status >= 200 && status < 300 && res.headers['x-elastic-product'] !== 'Elasticsearch') {
    throw new ProductNotSupportedError('the server is not Elasticsearch');
  }
  if (status >= 400 && !ignore.includes(status)) {
    // Node keeps the first of repeated Retry-After headers (a single-valued header): one string or none.
    const retryAfterMs = status === 429 || status === 503 ? parseRetryAfter(res.headers['retry-after']) : undefined;
    throw new ResponseError(status, body, retryAfterMs);
  }
  return (body === '' ? {} : body) as T;
}

/** The HTTP status of a failed request, when Elasticsearch answered. */
export function statusOf(error: unknown): number | undefined {
  return error instanceof ResponseError ? error.statusCode : undefined;
}

export function isTimeout(error: unknown): boolean {
  return error instanceof TimeoutError;
}

/** Short description of a request error: status, ES error type and reason, or the network error. */
export function describe(error: unknown): string {
  if (error instanceof ResponseError) {
    const body = error.body as { error?: { type?: string; reason?: string } | string } | undefined;
    const detail =
      typeof body?.error === 'object'
        ? `${body.error.type ?? 'error'}: ${body.error.reason ?? ''}`
        : typeof body?.error === 'string'
          ? body.error
          : '';
    return `HTTP ${error.statusCode}${detail ? ` ${detail}` : ''}`;
  }
  if (error instanceof TimeoutError) return 'request timed out';
  if (error instanceof RequestAbortedError) return 'request aborted: the exporter was stopped';
  if (error instanceof ProductNotSupportedError) return 'the server is not Elasticsearch (no x-elastic-product header)';
  if (error instanceof Error) return error.message;
  return String(error);
}

export function classify(error: unknown): Failure {
  if (error instanceof ResponseError) {
    const status = error.statusCode;
    if (status === 401 || status === 403) return 'auth';
    if (status === 429 || status >= 500 || status === 408) return 'retry';
    return 'fatal';
  }
  if (error instanceof ProductNotSupportedError) return 'fatal';
  return 'retry';
}
