// Bounded retries with exponential backoff and full jitter (delay = random(0, min(max, base * 2^(n-1)))),
// so thousands of agents that failed together do not retry together.

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

export const DEFAULT_RETRY: Required<RetryOptions> = { attempts: 3, baseDelayMs: 200, maxDelayMs: 5000 };

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

export function retryPolicy(options: RetryOptions = {}, overrides: Partial<RetryPolicy> = {}): RetryPolicy {
  const attempts = options.attempts ?? DEFAULT_RETRY.attempts;
  if (!Number.isInteger(attempts) || attempts < 1 || attempts > 10) {
    throw new RangeError(`retry.attempts must be an integer from 1 to 10, got ${attempts}`);
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

/** Delay before attempt `failed + 1`, after `failed` (1-based) attempts failed: full jitter. */
export function backoffDelay(failed: number, policy: Pick<RetryPolicy, 'baseDelayMs' | 'maxDelayMs' | 'random'>): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (failed - 1));
  return Math.floor(policy.random() * ceiling);
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
