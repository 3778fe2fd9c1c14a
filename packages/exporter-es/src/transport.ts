/**
 * Every request the exporter makes to Elasticsearch, and what a failed one means: retry later (down,
 * overloaded), credentials, or fatal (a request no retry fixes).
 */
import { Client, errors as esErrors, type TransportRequestParams } from '@elastic/elasticsearch';
import type { EsExporterOptions, EsSettings } from './options.js';

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

export class EsTransport {
  private readonly client: Client;

  constructor(
    settings: EsSettings,
    options: EsExporterOptions,
    private readonly signal: AbortSignal | undefined,
  ) {
    this.client = new Client({
      nodes: settings.nodes,
      ...(options.auth ? { auth: options.auth } : {}),
      ...(options.tls ? { tls: options.tls } : {}),
      maxRetries: 0,
      requestTimeout: settings.requestTimeoutMs,
      compression: options.compression ?? false,
      // Never put bodies or headers into client errors' messages beyond what we describe ourselves.
      redaction: { type: 'remove' },
    });
  }

  /** Told to stop waiting for Elasticsearch: nothing more is sent. */
  get stopped(): boolean {
    return this.signal?.aborted ?? false;
  }

  /** None starts after a stop, and one in flight is aborted by it; statuses in `ignore` answer their body. */
  request<T = unknown>(params: EsRequest, options: { ignore?: number[] } = {}): Promise<T> {
    if (this.stopped) return Promise.reject(STOPPED);
    const requestOptions = { ...options, maxRetries: 0, ...(this.signal ? { signal: this.signal } : {}) };
    return this.client.transport.request<T>(params as TransportRequestParams, requestOptions) as Promise<T>;
  }

  async close(): Promise<void> {
    await this.client.close().catch(() => undefined);
  }
}

/** The HTTP status of a failed request, when Elasticsearch answered. */
export function statusOf(error: unknown): number | undefined {
  return error instanceof esErrors.ResponseError ? error.statusCode : undefined;
}

export function isTimeout(error: unknown): boolean {
  return error instanceof esErrors.TimeoutError;
}

/** Short description of a client error: status, ES error type and reason, or the network error. */
export function describe(error: unknown): string {
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

export function classify(error: unknown): Failure {
  if (error instanceof esErrors.ResponseError) {
    const status = error.statusCode ?? 0;
    if (status === 401 || status === 403) return 'auth';
    if (status === 429 || status >= 500 || status === 408) return 'retry';
    return 'fatal';
  }
  if (error instanceof esErrors.ProductNotSupportedError || error instanceof esErrors.ConfigurationError) return 'fatal';
  return 'retry';
}
