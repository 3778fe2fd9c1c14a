import { afterEach, describe, expect, it, vi } from 'vitest';
import { firstDelayMs, Scheduler, systemClock, type Clock, type Job } from '../src/scheduler.js';

/** A clock that only moves when the test says so; due timers fire in order, promises settle in between. */
class FakeClock implements Clock {
  time = 1_000_000;
  private timers: Array<{ at: number; callback: () => void; id: number }> = [];
  private ids = 0;

  now = () => this.time;

  setTimeout = (callback: () => void, ms: number) => {
    const id = ++this.ids;
    this.timers.push({ at: this.time + ms, callback, id });
    return id;
  };

  clearTimeout = (handle: unknown) => {
    this.timers = this.timers.filter((t) => t.id !== handle);
  };

  async advance(ms: number): Promise<void> {
    const end = this.time + ms;
    for (;;) {
      await flush();
      this.timers.sort((a, b) => a.at - b.at);
      const next = this.timers[0];
      if (!next || next.at > end) break;
      this.timers.shift();
      this.time = next.at;
      next.callback();
    }
    this.time = end;
    await flush();
  }
}

const flush = async () => {
  for (let i = 0; i < 10; i++) await Promise.resolve();
};

/** A job whose runs the test finishes by hand; records when each started. */
function manualJob(name: string, spec: Job['spec'], clock: FakeClock) {
  const starts: number[] = [];
  const finishers: Array<() => void> = [];
  const job: Job = {
    name,
    spec,
    run: () => {
      starts.push(clock.now());
      return new Promise<void>((resolve) => finishers.push(resolve));
    },
  };
  return {
    job,
    starts,
    finishAll: () => {
      for (const finish of finishers.splice(0)) finish();
    },
  };
}

const SEC = 1000;
const MIN = 60 * SEC;

describe('the daemon schedule', () => {
  it('runs each job on a fixed grid, each run up to splay% late, without drifting', async () => {
    const clock = new FakeClock();
    const t0 = clock.now();
    const randoms = [0.5, 0, 0.99, 0.25, 1 - 1e-9];
    let i = 0;
    const abuse = manualJob('abuse', { everySec: 900, splayPct: 10, firstDelaySec: 30 }, clock);
    const scheduler = new Scheduler({ jobs: [abuse.job], clock, random: () => randoms[i++ % randoms.length]! });
    scheduler.start();
    for (let run = 0; run < 5; run++) {
      await clock.advance(15 * MIN);
      abuse.finishAll();
    }
    // First: 30 s + 0.5 * min(90 s, 30 s); then slot k at first + k * 15 min + random * 90 s.
    const first = t0 + 30 * SEC + 15 * SEC;
    expect(abuse.starts.map((t) => t - t0)).toEqual([
      first - t0,
      first - t0 + 15 * MIN + 0,
      first - t0 + 30 * MIN + 0.99 * 90 * SEC,
      first - t0 + 45 * MIN + 0.25 * 90 * SEC,
      first - t0 + 60 * MIN + (1 - 1e-9) * 90 * SEC,
    ]);
    scheduler.stop();
  });

  it('with random jitter, a fleet of agents started together spreads over the splay window', () => {
    const spec = { everySec: 900, splayPct: 10, firstDelaySec: 120 };
    // 1000 agents: first runs spread between 120 s and 210 s (min(90 s splay, 120 s)), none identical.
    const firsts = Array.from({ length: 1000 }, () => firstDelayMs(spec, Math.random));
    expect(Math.min(...firsts)).toBeGreaterThanOrEqual(120 * SEC);
    expect(Math.max(...firsts)).toBeLessThan(210 * SEC);
    expect(Math.max(...firsts) - Math.min(...firsts)).toBeGreaterThan(60 * SEC);
    const perSecond = new Map<number, number>();
    for (const t of firsts) perSecond.set(Math.floor(t / SEC), (perSecond.get(Math.floor(t / SEC)) ?? 0) + 1);
    expect(Math.max(...perSecond.values())).toBeLessThan(40);
  });

  it('starts analytics a few minutes after start by default, abuse first', async () => {
    const clock = new FakeClock();
    const t0 = clock.now();
    const abuse = manualJob('abuse', { everySec: 900, splayPct: 10, firstDelaySec: 30 }, clock);
    const analytics = manualJob('analytics', { everySec: 86400, splayPct: 10, firstDelaySec: 180 }, clock);
    const scheduler = new Scheduler({ jobs: [abuse.job, analytics.job], clock, random: () => 0.999 });
    scheduler.start();
    await clock.advance(6 * MIN);
    expect(abuse.starts.map((t) => t - t0)).toEqual([30 * SEC + 0.999 * 30 * SEC]);
    expect(analytics.starts.map((t) => t - t0)).toEqual([180 * SEC + 0.999 * 180 * SEC]);
    scheduler.stop();
  });

  it('never runs a job twice at once: a run due while the previous one goes on is skipped and reported, so is the overrun', async () => {
    const clock = new FakeClock();
    const abuse = manualJob('abuse', { everySec: 60, splayPct: 0, firstDelaySec: 0 }, clock);
    const skipped: number[] = [];
    const overruns: Array<{ durationMs: number; intervalMs: number }> = [];
    const scheduler = new Scheduler({
      jobs: [abuse.job],
      clock,
      random: () => 0,
      onSkip: (_job, info) => skipped.push(info.slot),
      onOverrun: (_job, info) => overruns.push(info),
    });
    scheduler.start();
    await clock.advance(0);
    expect(abuse.starts).toHaveLength(1);
    await clock.advance(150 * SEC); // slots 1 (60 s) and 2 (120 s) come while run 0 is still going
    expect(abuse.starts).toHaveLength(1);
    expect(skipped).toEqual([1, 2]);
    abuse.finishAll();
    await clock.advance(0);
    expect(overruns).toEqual([{ durationMs: 150 * SEC, intervalMs: 60 * SEC }]);
    await clock.advance(30 * SEC); // slot 3 at 180 s runs normally
    expect(abuse.starts).toHaveLength(2);
    abuse.finishAll();
    await clock.advance(0);
    expect(overruns).toHaveLength(1);
    scheduler.stop();
  });

  it('stop() plans nothing more, and a failing run does not stop the schedule', async () => {
    const clock = new FakeClock();
    let runs = 0;
    const errors: unknown[] = [];
    const scheduler = new Scheduler({
      jobs: [{ name: 'abuse', spec: { everySec: 10, splayPct: 0, firstDelaySec: 0 }, run: async () => void runs++ }],
      clock,
      random: () => 0,
      onError: (_job, error) => errors.push(error),
    });
    scheduler.start();
    await clock.advance(25 * SEC);
    expect(runs).toBe(3);
    scheduler.stop();
    await clock.advance(60 * SEC);
    expect(runs).toBe(3);

    const failing = new Scheduler({
      jobs: [{ name: 'abuse', spec: { everySec: 10, splayPct: 0, firstDelaySec: 0 }, run: async () => Promise.reject(new Error('boom')) }],
      clock,
      random: () => 0,
      onError: (_job, error) => errors.push(error),
    });
    failing.start();
    await clock.advance(25 * SEC);
    failing.stop();
    expect(errors.map((e) => (e as Error).message)).toEqual(['boom', 'boom', 'boom']);
  });

  it('after a long suspend (clock jump) skips the missed slots instead of running a burst', async () => {
    const clock = new FakeClock();
    const abuse = manualJob('abuse', { everySec: 60, splayPct: 0, firstDelaySec: 0 }, clock);
    const scheduler = new Scheduler({ jobs: [abuse.job], clock, random: () => 0 });
    scheduler.start();
    await clock.advance(0);
    abuse.finishAll();
    // The VM sleeps 10 minutes: the timer fires late once.
    clock.time += 10 * MIN;
    await clock.advance(0);
    abuse.finishAll();
    await clock.advance(0);
    expect(abuse.starts).toHaveLength(2);
    await clock.advance(59 * SEC);
    expect(abuse.starts).toHaveLength(2);
    await clock.advance(1 * SEC);
    expect(abuse.starts).toHaveLength(3);
    scheduler.stop();
  });

  describe('on the real clock (Node timers, faked)', () => {
    afterEach(() => {
      vi.useRealTimers();
    });

    it('runs a 30-day interval once per 30 days: timers past 2^31-1 ms are chained, never fired early', async () => {
      const DAY = 24 * 60 * MIN;
      // Fake timers behave like Node: a delay over 2^31-1 ms (24.8 days) fires after 1 ms.
      vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
      const starts: number[] = [];
      const t0 = Date.now();
      const scheduler = new Scheduler({
        jobs: [
          {
            name: 'analytics',
            spec: { everySec: 30 * 24 * 3600, splayPct: 0, firstDelaySec: 0 },
            run: async () => void starts.push(Date.now() - t0),
          },
        ],
        clock: systemClock,
        random: () => 0,
      });
      scheduler.start();
      await vi.advanceTimersByTimeAsync(SEC);
      expect(starts).toEqual([0]);
      await vi.advanceTimersByTimeAsync(29 * DAY);
      expect(starts).toEqual([0]);
      await vi.advanceTimersByTimeAsync(DAY);
      expect(starts).toEqual([0, 30 * DAY]);
      await vi.advanceTimersByTimeAsync(30 * DAY);
      expect(starts).toEqual([0, 30 * DAY, 60 * DAY]);
      scheduler.stop();
      await vi.advanceTimersByTimeAsync(60 * DAY);
      expect(starts).toHaveLength(3);
    });
  });
});
