// @gather/fetcher-s3: what an agent needs to fetch bundles. Publishing and rolling back (CI code) are the
// `@gather/fetcher-s3/publish` subpath, which this entry never imports.
export { createS3Fetcher, type S3Fetcher, type S3FetchResult } from './fetcher.js';
export type { S3FetcherOptions } from './options.js';
export { s3OptionsFromEnv, type S3EnvOptions } from './env.js';
export type { ChecksumSetting, S3ConnectionOptions, S3Credentials } from './client.js';
export type { RetryOptions } from '@gather/core';
