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
  type VerifiedBundle,
} from './bundle.js';
export { readTar, type TarMember } from './_tar.js';
export { parseCheckOutput, resultProblem, MAX_VALUE_DEPTH, MAX_PROBLEMS_KEPT, type ParsedOutput } from './output.js';
export { executeCheck, enterIdleIoClass, type CheckOutcome, type ExecuteOptions } from './execute.js';
export {
  openContainment,
  ownCgroupDir,
  CONTAINMENT_MODES,
  type Containment,
  type ContainmentMode,
  type CheckContainer,
} from './contain.js';
export { run, checkEnvironment, classifyOutcome, checkDocuments, DEFAULTS, type RunOptions, type CheckDoneEvent } from './run.js';
export {
  createFileFetcher,
  createFileExporter,
  createStdoutExporter,
  createMemoryExporter,
  type FileFetcherOptions,
  type FileExporterOptions,
  type MemoryExporter,
} from './adapters.js';
export { redact, redactText } from './redact.js';
export { CORE_VERSION } from './version.js';
