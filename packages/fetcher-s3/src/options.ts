// The fetcher's options: what a caller may pass, checked once when the fetcher is created and resolved
// into the settings the rest of the fetcher reads (no option is looked at again after that).
import { resolve } from 'node:path';
import {
  ConfigError,
  DURATION_RANGES,
  describeRange,
  durationProblem,
  retryPolicy,
  type DurationRange,
  type LockTakeover,
  type RetryOptions,
  type RetryPolicy,
} from '@gather/core';
import { SCOPE, describeCredentials, describeEndpoint, s3Url, secretsOf, validateConnection, type S3ConnectionOptions } from './client.js';
import { normalizePrefix, pointerKey } from './_layout.js';

export interface S3FetcherOptions extends S3ConnectionOptions {
  /** The bucket. Required. */
  bucket: string;
  /**
   * The prefix bundles are published under (`gather-bundle publish --prefix`): the fetcher reads the
   * pointer `<prefix>/latest` and fetches the bundle it names. Exactly one of `prefix` and `key`.
   */
  prefix?: string;
  /** The exact key of one bundle object (no pointer). Exactly one of `prefix` and `key`. */
  key?: string;
  /**
   * A directory kept between runs (created with mode 0700). With it, fetches are conditional (ETag) and the
   * bundle lives here (the returned path points into it). Without it every fetch downloads into `dir`.
   */
  cacheDir?: string;
  /** Limit for one whole fetch, retries included, ms. Default 60000. */
  timeoutMs?: number;
  /** Retries of transient failures (5xx, throttling, connection reset/refused, truncated body). Default 3 attempts, 200 ms base, full jitter. */
  retry?: RetryOptions;
  /**
   * Compare a plain MD5 ETag with the MD5 of the downloaded bytes (skipped for multipart and KMS/SSE-C
   * objects, whose ETags are not MD5s). Default true; turn off for servers whose ETags are not MD5s.
   */
  verifyEtag?: boolean;
  /** Called before each retry, e.g. to log it. The error message never contains credentials. */
  onRetry?: (info: { key: string; attempt: number; delayMs: number; error: string }) => void;
  /** Called when a stale cache lock (a crashed process's, one from before a reboot) is taken over, e.g. to log it. */
  onLockTakeover?: (takeover: LockTakeover) => void;
}

export const DEFAULT_TIMEOUT_MS = 60_000;

/** What is polled: the pointer `<prefix>/latest` (prefix mode) or one fixed object (key mode). */
export type FetchTarget = { prefix: string; key?: undefined } | { key: string; prefix?: undefined };

/** The options, checked and resolved. */
export interface FetcherSettings {
  bucket: string;
  target: FetchTarget;
  timeoutMs: number;
  policy: RetryPolicy;
  verifyEtag: boolean;
  /** The endpoint for messages; `at` is " at <endpoint>" when one was set, else empty. */
  endpoint: string;
  at: string;
  credentialsSource: string;
  /** Values redacted from every message. */
  secrets: string[];
  /** s3:// URL of what is polled, for messages and the cache lock. */
  sourceName: string;
  /** The cacheDir option, absolute. */
  cacheRoot: string | undefined;
}

/** Throws a ConfigError naming the option and how to fix it. */
export function validateOptions(options: S3FetcherOptions): void {
  if (!options?.bucket) throw new ConfigError('Missing option "bucket". Pass it or set GATHER_S3_BUCKET.', { scope: SCOPE });
  const hasKey = options.key !== undefined && options.key !== '';
  const hasPrefix = options.prefix !== undefined && options.prefix !== '';
  if (hasKey === hasPrefix) {
    throw new ConfigError(
      hasKey
        ? 'Pass either option "prefix" (follow <prefix>/latest) or option "key" (one fixed object), not both.'
        : 'Missing option "prefix". Pass the prefix bundles are published under (the fetcher follows <prefix>/latest) ' +
            'or "key" for one fixed object; or set GATHER_S3_PREFIX.',
      { scope: SCOPE },
    );
  }
  // Delays share core's ranges (one table for every duration gather takes): none overflows a Node timer.
  const delays: Array<[string, number | undefined, DurationRange]> = [
    ['timeoutMs', options.timeoutMs, DURATION_RANGES.requestTimeoutMs],
    ['retry.baseDelayMs', options.retry?.baseDelayMs, DURATION_RANGES.retryBaseDelayMs],
    ['retry.maxDelayMs', options.retry?.maxDelayMs, DURATION_RANGES.retryMaxDelayMs],
  ];
  for (const [name, value, range] of delays) {
    if (value !== undefined && durationProblem(value, range)) {
      throw new ConfigError(`Invalid option "${name}" ${value}: use ${describeRange(range)}.`, { scope: SCOPE });
    }
  }
  validateConnection(options);
}

export function resolveSettings(options: S3FetcherOptions): FetcherSettings {
  validateOptions(options);
  const bucket = options.bucket;
  const target: FetchTarget = options.prefix ? { prefix: normalizePrefix(options.prefix) } : { key: options.key! };
  const endpoint = describeEndpoint(options);
  return {
    bucket,
    target,
    timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    policy: retryPolicy(options.retry),
    verifyEtag: options.verifyEtag ?? true,
    endpoint,
    at: options.endpoint ? ` at ${endpoint}` : '',
    credentialsSource: describeCredentials(options),
    secrets: secretsOf(options),
    sourceName: s3Url(bucket, target.prefix !== undefined ? pointerKey(target.prefix) : target.key),
    cacheRoot: options.cacheDir ? resolve(options.cacheDir) : undefined,
  };
}
