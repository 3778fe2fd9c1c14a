export { createS3Fetcher, type S3Fetcher, type S3FetcherOptions, type S3FetchResult } from './fetcher.js';
export {
  publishBundle,
  listBundleVersions,
  PublishError,
  DEFAULT_MULTIPART_THRESHOLD,
  DEFAULT_PART_BYTES,
  MIN_PART_BYTES,
  type BucketOptions,
  type PublishOptions,
  type PublishResult,
  type PublishedVersion,
} from './publish.js';
export { rollbackBundle, type BundleSigner, type RollbackOptions, type RollbackResult } from './rollback.js';
export { publishCommand, rollbackCommand, PUBLISH_USAGE, ROLLBACK_USAGE, type CommandIo, type RollbackCommandDeps } from './cli-commands.js';
export { s3OptionsFromEnv, type S3EnvOptions } from './env.js';
export type { ChecksumSetting, S3ConnectionOptions, S3Credentials } from './_client.js';
export type { RetryOptions } from './_retry.js';
