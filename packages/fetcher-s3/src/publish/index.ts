// @gather/fetcher-s3/publish: publishing and rolling back bundles, for CI (`gather-bundle publish | rollback`).
// A separate entry so agents, which only fetch, never load it.
export {
  PublishError,
  listBundleVersions,
  type BucketOptions,
  type PublishedVersion,
} from './session.js';
export {
  publishBundle,
  DEFAULT_MULTIPART_THRESHOLD,
  DEFAULT_PART_BYTES,
  MIN_PART_BYTES,
  type PublishOptions,
  type PublishResult,
} from './publish.js';
export { rollbackBundle, type BundleSigner, type RollbackOptions, type RollbackResult } from './rollback.js';
export { publishCommand, rollbackCommand, PUBLISH_USAGE, ROLLBACK_USAGE, type CommandIo, type RollbackCommandDeps } from './commands.js';
export { readBundleManifest } from './manifest.js';
export {
  POINTER_NAME,
  pointerKey,
  versionKey,
  parsePointer,
  serializePointer,
  type BundlePointer,
} from '../_layout.js';
