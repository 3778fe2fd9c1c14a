/**
 * The one table of duration ranges, shared by the bundler (`# gather: timeout=N`), core, the agent's
 * configuration and the adapters' options, so a value accepted in one place is never refused (or silently
 * clamped, or overflowed) in another. A value outside its range is a configuration error naming the
 * setting, the range and how to fix it.
 *
 * Node fires a timer longer than 2^31-1 ms (24.8 days) at once: `setLongTimeout` chains shorter timers, so
 * a 30-day interval really waits 30 days.
 */

export interface DurationRange {
  readonly min: number;
  readonly max: number;
  readonly unit: 's' | 'ms' | '%';
  /** Whole numbers only. */
  readonly integer?: boolean;
}

const DAY_SEC = 24 * 60 * 60;

export const DURATION_RANGES = {
  /** Per-check timeout: the agent's `timeoutSec` and a check's `# gather: timeout=N`. */
  checkTimeoutSec: { min: 1, max: 3600, unit: 's', integer: true },
  /** Daemon: how long the current run may go on after SIGTERM. */
  graceSec: { min: 0, max: 3600, unit: 's' },
  /** How long a run waits for another run's lock. */
  lockWaitSec: { min: 0, max: DAY_SEC, unit: 's' },
  /** Daemon: interval of a category. */
  everySec: { min: 1, max: 366 * DAY_SEC, unit: 's' },
  /** Daemon: first run after start. */
  firstDelaySec: { min: 0, max: 366 * DAY_SEC, unit: 's' },
  /** Daemon: the random delay of each run, as a share of the interval. */
  splayPct: { min: 0, max: 100, unit: '%' },
  /** Adapters: first retry delay and the largest one (fetcher-s3 `retry`, exporter-es `retry*DelayMs`). */
  retryBaseDelayMs: { min: 0, max: 60_000, unit: 'ms' },
  retryMaxDelayMs: { min: 0, max: 600_000, unit: 'ms' },
  /** Adapters: one request or one whole fetch (fetcher-s3 `timeoutMs`, exporter-es `requestTimeoutMs`). */
  requestTimeoutMs: { min: 1, max: 3_600_000, unit: 'ms' },
  /** exporter-es: how long Elasticsearch is considered down before it is probed again. */
  probeIntervalMs: { min: 0, max: 3_600_000, unit: 'ms' },
} as const satisfies Record<string, DurationRange>;

export type DurationSetting = keyof typeof DURATION_RANGES;

/** "a whole number of seconds from 1 to 3600" */
export function describeRange(range: DurationRange): string {
  const unit = range.unit === 's' ? 'seconds' : range.unit === 'ms' ? 'milliseconds' : 'percent';
  return `${range.integer ? 'a whole number' : 'a number'} of ${unit} from ${range.min} to ${range.max}`;
}

/** Undefined when `value` is within `range`, else what is wrong with it (for a `setting: problem` line). */
export function durationProblem(value: unknown, range: DurationRange): string | undefined {
  const ok =
    typeof value === 'number' &&
    Number.isFinite(value) &&
    value >= range.min &&
    value <= range.max &&
    (!range.integer || Number.isInteger(value));
  return ok ? undefined : `must be ${describeRange(range)}`;
}

/** The largest delay one Node timer honours; longer ones fire at once. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

export interface LongTimeout {
  clear(): void;
}

/**
 * Like setTimeout, for any delay: longer than MAX_TIMER_MS, it waits in steps that each re-read the
 * remaining time (Date.now()), so the callback runs once, at the deadline, never early.
 */
export function setLongTimeout(callback: () => void, ms: number): LongTimeout {
  const deadline = Date.now() + Math.max(0, ms);
  let timer: NodeJS.Timeout;
  const arm = (delay: number) => {
    timer = setTimeout(
      () => {
        const left = deadline - Date.now();
        if (left > 0) arm(left);
        else callback();
      },
      Math.min(delay, MAX_TIMER_MS),
    );
  };
  arm(Math.max(0, ms));
  return { clear: () => clearTimeout(timer) };
}
