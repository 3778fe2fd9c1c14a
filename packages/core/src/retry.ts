// The one retry helper of gather: bounded attempts, exponential backoff, full jitter, abortable sleeps.
// Adapters (the S3 fetcher, the Elasticsearch exporter) use it instead of writing their own loop.

export interface RetryOptions {
  /** Total attempts, first one included. Default 3. */
  attempts?: number;
  /** Backoff base, ms. Default 200. */
  baseDelayMs?: number;
  /** Upper bound of one delay, ms. Default 5000. */
  maxDelayMs?: number;
}

export interface RetryPolicy extends Required<RetryOptions> {
  /** Returns [0, 1); injectable for tests. */
  random: () => number;
  sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
}

/** What `backoffDelay` needs of a policy; `random` defaults to Math.random. */
export interface BackoffSettings {
  baseDelayMs: number;
  maxDelayMs: number;
  random?: () => number;
}

export const DEFAULT_RETRY: Required<RetryOptions> = { attempts: 3, baseDelayMs: 200, maxDelayMs: 5000 };
export const MAX_RETRY_ATTEMPTS = 10;

/** Resolves after `ms`; rejects with the signal's reason as soon as `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Fills in the defaults; refuses attempts outside 1..10 so a setting cannot retry forever. */
export function retryPolicy(options: RetryOptions = {}, overrides: Partial<RetryPolicy> = {}): RetryPolicy {
  const attempts = options.attempts ?? DEFAULT_RETRY.attempts;
  if (!Number.isInteger(attempts) || attempts < 1 || attempts > MAX_RETRY_ATTEMPTS) {
    throw new RangeError(`retry.attempts must be an integer from 1 to ${MAX_RETRY_ATTEMPTS}, got ${attempts}`);
  }
  return {
    attempts,
    baseDelayMs: Math.max(0, options.baseDelayMs ?? DEFAULT_RETRY.baseDelayMs),
    maxDelayMs: Math.max(0, options.maxDelayMs ?? DEFAULT_RETRY.maxDelayMs),
    random: Math.random,
    sleep,
    ...overrides,
  };
}

/**
 * Delay before the next attempt after `failed` (1-based) attempts failed:
 * random(0, min(maxDelayMs, baseDelayMs * 2^(failed-1))).
 *
 * Full jitter, deliberately: the agents of a fleet fail together (an S3 or Elasticsearch outage, a deploy)
 * and would otherwise retry together. Drawing the whole delay at random spreads their retries over the
 * window best and, as the AWS Architecture Blog's "Exponential Backoff And Jitter" measured, costs the
 * fewest calls for the same completion time; equal jitter ("half plus a random half") keeps half of every
 * delay in lockstep.
 */
export function backoffDelay(failed: number, settings: BackoffSettings): number {
  const random = settings.random ?? Math.random;
  const ceiling = Math.min(settings.maxDelayMs, settings.baseDelayMs * 2 ** Math.max(0, failed - 1));
  return Math.floor(random() * ceiling);
}

/** The last error of a retried operation, with how many attempts were made. */
export class RetriesExhausted extends Error {
  override name = 'RetriesExhausted';
  constructor(
    readonly last: unknown,
    readonly attempts: number,
  ) {
    super(last instanceof Error ? last.message : String(last), { cause: last });
  }
}

/**
 * Runs `operation` until it succeeds, fails with a non-transient error, or `policy.attempts` are used.
 * Throws the original error when it is not transient (attempts: 1 means "first try"); wraps it in
 * RetriesExhausted otherwise, so messages can say "after 3 attempts".
 */
export async function withRetry<T>(
  operation: (attempt: number) => Promise<T>,
  isTransient: (error: unknown) => boolean,
  policy: RetryPolicy,
  signal?: AbortSignal,
  onRetry?: (error: unknown, attempt: number, delayMs: number) => void,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await operation(attempt);
    } catch (error) {
      if (signal?.aborted || !isTransient(error)) throw error;
      if (attempt >= policy.attempts) throw new RetriesExhausted(error, attempt);
      const delay = backoffDelay(attempt, policy);
      onRetry?.(error, attempt, delay);
      await policy.sleep(delay, signal);
    }
  }
}
