export * from './types.js';
export * from './errors.js';
export {
  verifyBundle,
  extractBundle,
  loadBundlePayload,
  parsePublicKey,
  BUNDLE_FORMAT,
  MANIFEST_MEMBER,
  SIGNATURE_MEMBER,
  RUNNER_MEMBER,
  MAX_BUNDLE_BYTES,
  MAX_PAYLOAD_BYTES,
  MAX_CHECK_BYTES,
  readBundleFile,
  type VerifiedBundle,
} from './bundle.js';
export { readTar, type TarMember } from './tar.js';
export { checkFreshness, createSequenceStateFile, type SequenceState } from './sequence.js';
export { readStateFile, writeStateFile } from './state-file.js';
export { parseCheckOutput, resultProblem, MAX_VALUE_DEPTH, type ParsedOutput } from './output.js';
export { executeCheck, type CheckOutcome, type ExecuteOptions } from './execute.js';
export { enterIdleIoClass } from './io-priority.js';
export { loadFfi, type Ffi } from './ffi.js';
export {
  openContainment,
  ownCgroupDir,
  CONTAINMENT_MODES,
  type Containment,
  type ContainmentMode,
  type CheckContainer,
} from './contain.js';
export { fetchVerifiedBundle, isHostResourceError, type FetchProgress, type FetchVerifiedOptions } from './fetch-verified.js';
export {
  run,
  runRecorded,
  checkEnvironment,
  CHECK_SETTING_NAME,
  classifyOutcome,
  checkDocuments,
  DEFAULTS,
  type RunOptions,
  type CheckDoneEvent,
} from './run.js';
export {
  createFileFetcher,
  createFileExporter,
  createStdoutExporter,
  createMemoryExporter,
  type FileFetcherOptions,
  type FileExporterOptions,
  type MemoryExporter,
} from './adapters.js';
export { createScrubber, MASK, MIN_SECRET_LENGTH, redact, redactText, scrubbingExporter, type Scrubber } from './redact.js';
export {
  DURATION_RANGES,
  describeRange,
  durationProblem,
  setLongTimeout,
  type DurationRange,
  type DurationSetting,
  type LongTimeout,
} from './durations.js';
export {
  acquireLock,
  ownerAlive,
  processStartTime,
  LockBusyError,
  type AcquireOptions,
  type Lock,
  type LockOwner,
  type LockTakeover,
} from './lock.js';
export {
  createExclusive,
  ensurePrivateDir,
  openExclusive,
  readFileNoFollow,
  readFileNoFollowSync,
  writeFileAtomic,
  UnsafeDirectoryError,
  CREATE_EXCLUSIVE,
  READ_NO_FOLLOW,
} from './safe-fs.js';
export { assertRootOwnedPath, rootOwnershipProblem } from './root-trust.js';
export { indexNameProblem, INDEX_NAME_RULE } from './index-name.js';
export { keyPrefixProblem } from './key-prefix.js';
export { CORE_VERSION } from './version.js';
export {
  backoffDelay,
  retryPolicy,
  sleep,
  withRetry,
  RetriesExhausted,
  DEFAULT_RETRY,
  MAX_RETRY_ATTEMPTS,
  type BackoffSettings,
  type RetryOptions,
  type RetryPolicy,
} from './retry.js';
export { exportTotals } from './export-totals.js';
