export { EXIT, OUTCOME_EXIT, exitCodeOf, exitCodeForError, outcomeOf, type ExitCode, type RunFacts } from './exit-codes.js';
export { AGENT_VERSION } from './version.js';
export {
  loadConfig,
  describeConfig,
  parseBundleSource,
  defaultDirs,
  SETTINGS,
  SCHEDULE_DEFAULTS,
  DEFAULT_CONFIG_FILE,
  type AgentConfig,
  type LoadOptions,
  type ScheduleConfig,
  type BundleSource,
} from './config.js';
export { Scheduler, firstDelayMs, splayMs, systemClock, type Clock, type Job, type JobSpec, type SchedulerOptions } from './scheduler.js';
export { acquireLock, LockBusyError, ownerAlive, processStartTime, type Lock, type LockOwner, type LockTakeover } from './lock.js';
export { createLogger, type Logger } from './logger.js';
export { createFetcher, createExporter, importOptional } from './adapters.js';
export { EXPORT_AFTER_STOP_MS, exportTotals, runOnce, type RunOnceOptions, type RunOnceResult } from './run-once.js';
export { Daemon, DAEMON_LOCK, RUN_LOCK, type DaemonOptions } from './daemon.js';
