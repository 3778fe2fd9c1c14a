/**
 * The daemon's schedules, with an injected clock and random source so tests drive time.
 *
 * Each job runs on a fixed grid anchored at its first run: run k is due at `first + k * every`, started up
 * to `splayPct` % of `every` late (a fresh random jitter per run), so a fleet of agents started together
 * does not hit S3 and Elasticsearch in the same second, and the jitter never accumulates into drift. The
 * first run comes `firstDelaySec` after start, plus a jitter of up to min(splay, firstDelaySec).
 *
 * A job never runs twice at once: a run due while the previous one is still going is skipped and reported
 * (`onSkip`), and a run that took longer than its interval is reported (`onOverrun`).
 */
import { setLongTimeout, type LongTimeout } from '@gather/core';

export interface Clock {
  now(): number;
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** The real clock; its timers honour delays past Node's 24.8-day limit (a 30-day interval waits 30 days). */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => setLongTimeout(callback, ms),
  clearTimeout: (handle) => (handle as LongTimeout | undefined)?.clear(),
};

export interface JobSpec {
  everySec: number;
  splayPct: number;
  firstDelaySec: number;
}

export interface RunContext {
  /** When the run was due (grid time plus jitter), ms since epoch. */
  dueAt: number;
  /** Index of the run on the grid (0 = first). */
  slot: number;
}

export interface Job {
  name: string;
  spec: JobSpec;
  run: (context: RunContext) => Promise<void>;
}

export interface SchedulerOptions {
  jobs: Job[];
  clock?: Clock;
  /** Uniform in [0, 1). */
  random?: () => number;
  onSkip?: (job: string, info: { slot: number; dueAt: number }) => void;
  onOverrun?: (job: string, info: { durationMs: number; intervalMs: number }) => void;
  onError?: (job: string, error: unknown) => void;
  /** Called each time a run is planned, e.g. to log when. */
  onPlanned?: (job: string, info: { slot: number; dueAt: number }) => void;
}

/** The largest jitter of a run, ms. */
export function splayMs(spec: JobSpec): number {
  return (spec.everySec * 1000 * spec.splayPct) / 100;
}

/** When the first run is due, ms after start. */
export function firstDelayMs(spec: JobSpec, random: () => number): number {
  const window = Math.min(splayMs(spec), spec.firstDelaySec * 1000);
  return spec.firstDelaySec * 1000 + random() * window;
}

interface JobState {
  job: Job;
  /** Grid origin: when slot 0 is due without its jitter. */
  anchor: number;
  slot: number;
  timer: unknown;
  running: Promise<void> | undefined;
}

export class Scheduler {
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly states: JobState[] = [];
  private stopped = true;

  constructor(private readonly options: SchedulerOptions) {
    this.clock = options.clock ?? systemClock;
    this.random = options.random ?? Math.random;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    const now = this.clock.now();
    for (const job of this.options.jobs) {
      const first = now + firstDelayMs(job.spec, this.random);
      const state: JobState = { job, anchor: first, slot: 0, timer: undefined, running: undefined };
      this.states.push(state);
      this.plan(state, first);
    }
  }

  /** Stops planning new runs; runs in progress go on (see `running()`). */
  stop(): void {
    this.stopped = true;
    for (const state of this.states) this.clock.clearTimeout(state.timer);
  }

  /** The runs in progress. */
  running(): Promise<void>[] {
    return this.states.flatMap((s) => (s.running ? [s.running] : []));
  }

  private plan(state: JobState, dueAt: number): void {
    if (this.stopped) return;
    this.options.onPlanned?.(state.job.name, { slot: state.slot, dueAt });
    state.timer = this.clock.setTimeout(() => this.fire(state, dueAt), Math.max(0, dueAt - this.clock.now()));
  }

  private fire(state: JobState, dueAt: number): void {
    if (this.stopped) return;
    const slot = state.slot;
    const intervalMs = state.job.spec.everySec * 1000;
    if (state.running) {
      this.options.onSkip?.(state.job.name, { slot, dueAt });
    } else {
      const started = this.clock.now();
      const run = (async () => {
        try {
          await state.job.run({ dueAt, slot });
        } catch (error) {
          this.options.onError?.(state.job.name, error);
        } finally {
          const durationMs = this.clock.now() - started;
          if (durationMs > intervalMs) this.options.onOverrun?.(state.job.name, { durationMs, intervalMs });
          state.running = undefined;
        }
      })();
      state.running = run;
    }
    // The next slot in the future: a long suspend (or an overrun) skips slots instead of running a burst.
    const now = this.clock.now();
    let next = slot + 1;
    const behind = Math.floor((now - state.anchor) / intervalMs) + 1;
    if (behind > next) next = behind;
    state.slot = next;
    this.plan(state, state.anchor + next * intervalMs + this.random() * splayMs(state.job.spec));
  }
}
