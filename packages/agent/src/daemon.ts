/**
 * `gather-agent daemon`: runs each category on its schedule, one run at a time (gentle on the user's VM,
 * and the spool and the NDJSON file have one writer), never two runs of a category at once.
 *
 * - One daemon per host: `<stateDir>/daemon.lock`, held for the daemon's life.
 * - One run at a time per host: `<stateDir>/agent.lock`, held during each run (daemon or `gather-agent run`).
 * - Stop (SIGTERM/SIGINT): no new run starts; the current one may finish for `graceSec`, then its checks are
 *   killed; what it collected is exported (or spooled), its temp dir removed, and `finished` resolves.
 * - Reload (SIGHUP): the configuration is read again; an invalid one is reported and the old one kept.
 */
import { join } from 'node:path';
import { CATEGORIES, type Category } from '@gather/core';
import { describeConfig, type AgentConfig } from './config.js';
import { acquireLock, LockBusyError, logTakeover, type Lock } from './lock.js';
import { errorText, type Logger } from './logger.js';
import { runOnce, type RunOnceOptions, type RunOnceResult } from './run-once.js';
import { Scheduler, systemClock, type Clock, type RunContext } from './scheduler.js';

export const DAEMON_LOCK = 'daemon.lock';
export const RUN_LOCK = 'agent.lock';

export interface DaemonOptions {
  /** Reads the configuration (file, environment, flags); called at start and on reload. */
  load: () => AgentConfig;
  logger: Logger;
  clock?: Clock;
  random?: () => number;
  /** For tests. */
  runner?: (options: RunOnceOptions) => Promise<RunOnceResult>;
}

interface CurrentRun {
  category: Category;
  abort: AbortController;
  done: Promise<void>;
}

export class Daemon {
  private config: AgentConfig;
  private scheduler: Scheduler | undefined;
  private scheduleKey = '';
  private daemonLock: Lock | undefined;
  private readonly stopController = new AbortController();
  private current: CurrentRun | undefined;
  private readonly pending = new Set<Category>();
  private queue: Promise<void> = Promise.resolve();
  private stopping: Promise<void> | undefined;
  private resolveFinished!: () => void;
  /** Resolves once the daemon has stopped and released its locks. */
  readonly finished = new Promise<void>((resolve) => (this.resolveFinished = resolve));
  readonly stats = { runs: 0, failedRuns: 0, skipped: 0, overruns: 0 };

  constructor(private readonly options: DaemonOptions) {
    this.config = options.load();
  }

  private get logger(): Logger {
    return this.options.logger;
  }

  async start(): Promise<void> {
    this.logger.setSecrets(this.config.secrets);
    this.logger.level = this.config.logLevel;
    this.daemonLock = await acquireLock(join(this.config.stateDir, DAEMON_LOCK), {
      purpose: 'daemon',
      waitMs: 0,
      onTakeover: logTakeover(this.logger),
    });
    this.logger.info('daemon started', { config: describeConfig(this.config) });
    this.schedule();
  }

  private schedule(): void {
    const jobs = CATEGORIES.filter((c) => this.config.schedule[c].enabled).map((category) => ({
      name: category,
      spec: this.config.schedule[category],
      run: (context: RunContext) => this.runCategory(category, context),
    }));
    this.scheduleKey = JSON.stringify(this.config.schedule);
    this.scheduler = new Scheduler({
      jobs,
      clock: this.options.clock ?? systemClock,
      ...(this.options.random ? { random: this.options.random } : {}),
      onPlanned: (job, info) =>
        this.logger.debug('run planned', { category: job, slot: info.slot, due: new Date(info.dueAt).toISOString() }),
      onSkip: (job, info) => {
        this.stats.skipped++;
        this.logger.warn('run skipped: the previous run of this category is still going', { category: job, slot: info.slot });
      },
      onOverrun: (job, info) => {
        this.stats.overruns++;
        this.logger.warn('run overran its interval', { category: job, duration_ms: info.durationMs, interval_ms: info.intervalMs });
      },
      onError: (job, error) => this.logger.error('scheduled run failed unexpectedly', { category: job, error: errorText(error) }),
    });
    this.scheduler.start();
  }

  /** Queues a run of the category (runs never overlap); resolves when it ended. */
  runCategory(category: Category, context: RunContext = { dueAt: Date.now(), slot: 0 }): Promise<void> {
    if (this.pending.has(category)) {
      this.logger.warn('run skipped: a run of this category is already queued or running', { category });
      return Promise.resolve();
    }
    this.pending.add(category);
    const task = this.queue.then(() => this.execute(category, context)).finally(() => this.pending.delete(category));
    this.queue = task.catch(() => undefined);
    return task;
  }

  private async execute(category: Category, context: RunContext): Promise<void> {
    if (this.stopController.signal.aborted) return;
    const config = this.config;
    let lock: Lock;
    try {
      lock = await acquireLock(join(config.stateDir, RUN_LOCK), {
        purpose: `daemon run ${category}`,
        waitMs: config.lockWaitSec * 1000,
        signal: this.stopController.signal,
        onWait: (owner) => this.logger.info('waiting for the run lock', { category, holder: owner }),
        onTakeover: logTakeover(this.logger),
      });
    } catch (error) {
      if (this.stopController.signal.aborted) return;
      this.logger.error(LockBusyError.isInstance(error) ? 'run skipped: the run lock is busy' : 'run skipped: cannot take the run lock', {
        category,
        error: errorText(error),
      });
      return;
    }
    const abort = new AbortController();
    const runner = this.options.runner ?? runOnce;
    const done = (async () => {
      try {
        const result = await runner({
          config,
          category,
          logger: this.logger,
          trigger: 'schedule',
          signal: abort.signal,
          handleProcessSignals: false,
          append: true,
          overrunAfterMs: config.schedule[category].everySec * 1000,
          dueAt: context.dueAt,
        });
        this.stats.runs++;
        if (result.error !== undefined || result.exportError !== undefined) this.stats.failedRuns++;
      } catch (error) {
        // Configuration problems found late (e.g. an adapter package not installed): reported, the daemon goes on.
        this.stats.failedRuns++;
        this.logger.error('run could not start', { category, error: errorText(error) });
      } finally {
        await lock.release();
      }
    })();
    this.current = { category, abort, done };
    try {
      await done;
    } finally {
      this.current = undefined;
    }
  }

  /** Stops scheduling, lets the current run end for up to graceSec, then kills its checks; idempotent. */
  stop(reason: string): Promise<void> {
    if (this.stopping) {
      // A second signal: no more grace.
      if (this.current && !this.current.abort.signal.aborted) {
        this.logger.warn('stopping now: killing the running checks', { reason });
        this.current.abort.abort();
      }
      return this.stopping;
    }
    this.stopping = (async () => {
      this.scheduler?.stop();
      this.stopController.abort();
      const current = this.current;
      this.logger.info('daemon stopping', { reason, running: current?.category ?? null, grace_sec: this.config.graceSec });
      if (current) {
        let timer: NodeJS.Timeout | undefined;
        const graceOver = new Promise<'grace'>((resolve) => (timer = setTimeout(() => resolve('grace'), this.config.graceSec * 1000)));
        const outcome = await Promise.race([current.done.then(() => 'done' as const), graceOver]);
        clearTimeout(timer);
        if (outcome === 'grace') {
          this.logger.warn('grace period over: killing the running checks', {
            category: current.category,
            grace_sec: this.config.graceSec,
          });
          current.abort.abort();
          await current.done;
        }
      }
      await this.queue;
      await this.daemonLock?.release();
      this.logger.info('daemon stopped', { ...this.stats });
      this.resolveFinished();
    })();
    return this.stopping;
  }

  /** Reads the configuration again; keeps the current one when the new one is invalid. */
  reload(): void {
    if (this.stopping) return;
    let next: AgentConfig;
    try {
      next = this.options.load();
    } catch (error) {
      this.logger.error('configuration reload failed; keeping the current configuration', {
        error: errorText(error),
        problems: (error as { problems?: string[] }).problems,
      });
      return;
    }
    if (next.stateDir !== this.config.stateDir)
      this.logger.warn('stateDir changed: takes effect at the next restart', { stateDir: next.stateDir });
    this.config = { ...next, stateDir: this.config.stateDir };
    this.logger.setSecrets(next.secrets);
    this.logger.level = next.logLevel;
    if (JSON.stringify(next.schedule) !== this.scheduleKey) {
      this.scheduler?.stop();
      this.schedule();
    }
    this.logger.info('configuration reloaded', { config: describeConfig(this.config) });
  }
}
