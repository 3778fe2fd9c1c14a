import { describe, expect, it } from 'vitest';
import { RetriesExhausted, backoffDelay, retryPolicy, sleep, withRetry } from '../src/index.js';

describe('backoff with full jitter', () => {
  const policy = { baseDelayMs: 200, maxDelayMs: 5000 };

  it('draws each delay uniformly from [0, base * 2^(n-1)), capped', () => {
    expect(backoffDelay(1, { ...policy, random: () => 0.999 })).toBe(199);
    expect(backoffDelay(2, { ...policy, random: () => 0.999 })).toBe(399);
    expect(backoffDelay(3, { ...policy, random: () => 0.5 })).toBe(400);
    expect(backoffDelay(10, { ...policy, random: () => 0.999 })).toBe(4995);
    expect(backoffDelay(3, { ...policy, random: () => 0 })).toBe(0);
  });

  it('uses Math.random when no random source is given, staying below the ceiling', () => {
    for (let failed = 1; failed <= 8; failed++) {
      const delay = backoffDelay(failed, policy);
      expect(delay).toBeGreaterThanOrEqual(0);
      expect(delay).toBeLessThan(Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (failed - 1)));
    }
  });

  it('defaults to 3 attempts, 200 ms base; refuses unbounded settings', () => {
    expect(retryPolicy()).toMatchObject({ attempts: 3, baseDelayMs: 200, maxDelayMs: 5000 });
    expect(() => retryPolicy({ attempts: 0 })).toThrow(RangeError);
    expect(() => retryPolicy({ attempts: 1000 })).toThrow(RangeError);
  });
});

describe('withRetry', () => {
  const sleeps: number[] = [];
  const policy = retryPolicy({ attempts: 3 }, { random: () => 0.5, sleep: async (ms) => void sleeps.push(ms) });
  const transient = (error: unknown) => (error as Error).message === 'transient';

  it('retries transient failures with growing delays and returns the first success', async () => {
    sleeps.length = 0;
    let calls = 0;
    const value = await withRetry(
      async () => {
        calls++;
        if (calls < 3) throw new Error('transient');
        return 'ok';
      },
      transient,
      policy,
    );
    expect(value).toBe('ok');
    expect(calls).toBe(3);
    expect(sleeps).toEqual([100, 200]);
  });

  it('gives up after `attempts` and says how many were made', async () => {
    let calls = 0;
    const error = await withRetry(
      async () => {
        calls++;
        throw new Error('transient');
      },
      transient,
      policy,
    ).catch((e: unknown) => e);
    expect(calls).toBe(3);
    expect(error).toBeInstanceOf(RetriesExhausted);
    expect(error).toMatchObject({ attempts: 3, message: 'transient' });
  });

  it('does not retry a permanent failure', async () => {
    let calls = 0;
    const permanent = new Error('permanent');
    await expect(
      withRetry(
        async () => {
          calls++;
          throw permanent;
        },
        transient,
        policy,
      ),
    ).rejects.toBe(permanent);
    expect(calls).toBe(1);
  });

  it('stops when the signal is aborted', async () => {
    const controller = new AbortController();
    let calls = 0;
    const pending = withRetry(
      async () => {
        calls++;
        controller.abort();
        throw new Error('transient');
      },
      transient,
      policy,
      controller.signal,
    );
    await expect(pending).rejects.toThrow('transient');
    expect(calls).toBe(1);
  });
});

describe('sleep', () => {
  it('rejects with the abort reason as soon as the signal aborts, and at once when it already has', async () => {
    const controller = new AbortController();
    const pending = sleep(60_000, controller.signal);
    controller.abort(new Error('stopping'));
    await expect(pending).rejects.toThrow('stopping');
    await expect(sleep(60_000, controller.signal)).rejects.toThrow('stopping');
  });
});
