import { afterEach, describe, expect, it, vi } from 'vitest';
import { MAX_TIMER_MS } from '../src/durations.js';
import { DURATION_RANGES, durationProblem, loadBundlePayload, setLongTimeout, verifyBundle } from '../src/index.js';
import { check, makeBundle, makeKeys } from './_fixtures.js';

describe('duration ranges', () => {
  it('accepts the bounds and refuses what lies outside, fractions where whole numbers are required, NaN and non-numbers', () => {
    const range = DURATION_RANGES.checkTimeoutSec;
    expect(durationProblem(range.min, range)).toBeUndefined();
    expect(durationProblem(range.max, range)).toBeUndefined();
    for (const bad of [range.min - 1, range.max + 1, 1.5, NaN, Infinity, '60', undefined]) {
      expect(durationProblem(bad, range)).toBe('must be a whole number of seconds from 1 to 3600');
    }
    expect(durationProblem(0.5, DURATION_RANGES.graceSec)).toBeUndefined();
  });

  it('makes every bounded delay fit one Node timer, except the daemon schedule, which chains them', () => {
    for (const [name, range] of Object.entries(DURATION_RANGES)) {
      const maxMs = range.unit === 's' ? range.max * 1000 : range.max;
      if (name === 'everySec' || name === 'firstDelaySec') expect(maxMs).toBeGreaterThan(MAX_TIMER_MS);
      else if (range.unit !== '%') expect(maxMs, name).toBeLessThanOrEqual(MAX_TIMER_MS);
    }
  });

  it('refuses a signed bundle whose check carries a timeout outside the range (the bundler would not build it)', () => {
    const keys = makeKeys();
    const bundle = makeBundle({ keys, checks: [check('abc', 'echo hi', 'abuse', DURATION_RANGES.checkTimeoutSec.max + 1)] });
    expect(() => loadBundlePayload(verifyBundle(bundle, keys.publicKeyPem))).toThrow(
      /runner check "abc" has a timeout outside a whole number of seconds from 1 to 3600/,
    );
    const ok = makeBundle({ keys, checks: [check('abc', 'echo hi', 'abuse', DURATION_RANGES.checkTimeoutSec.max)] });
    expect(loadBundlePayload(verifyBundle(ok, keys.publicKeyPem)).checks[0]?.timeoutSec).toBe(3600);
  });
});

describe('setLongTimeout', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('fires once, at the deadline, for a delay past 2^31-1 ms; clear() cancels it', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const DAY = 24 * 3600 * 1000;
    let fired = 0;
    setLongTimeout(() => fired++, 40 * DAY);
    const cleared = setLongTimeout(() => fired++, 30 * DAY);
    await vi.advanceTimersByTimeAsync(DAY);
    cleared.clear();
    await vi.advanceTimersByTimeAsync(39 * DAY - 1);
    expect(fired).toBe(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(fired).toBe(1);
    await vi.advanceTimersByTimeAsync(100 * DAY);
    expect(fired).toBe(1);
  });
});
