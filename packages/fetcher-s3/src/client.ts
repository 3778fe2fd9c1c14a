// Builds the S3 client shared by the fetcher and publish/rollback, and describes where requests go and
// which credentials they use, for messages. Nothing here ever prints or returns a secret.
import { S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import { ConfigError, redactText } from '@gather/core';

export const SCOPE = 'fetcher-s3';

/** Static credentials or an SDK credential provider. */
export type S3Credentials = NonNullable<S3ClientConfig['credentials']>;

/**
 * How the AWS SDK computes and validates checksums:
 * - `default`: the SDK defaults (`WHEN_SUPPORTED`): uploads carry a CRC32 checksum, downloads are validated
 *   against the checksum the server returns. Works with AWS S3 and S3Proxy.
 * - `when-required`: only where an operation requires one. Use it for S3-compatible servers that reject
 *   or mishandle checksum headers / aws-chunked bodies (typically errors such as "XAmzContentSHA256Mismatch",
 *   "InvalidArgument" or "NotImplemented" on upload, or a checksum failure on download).
 */
export type ChecksumSetting = 'default' | 'when-required';

/** Where the bucket lives and how to authenticate; shared by the fetcher, publish and rollback. */
export interface S3ConnectionOptions {
  /** AWS region. Default: the SDK chain (AWS_REGION, profile); `us-east-1` when `endpoint` is set and none is found. */
  region?: string;
  /** An S3-compatible endpoint URL (MinIO, S3Proxy, Ceph...). Default: AWS S3. */
  endpoint?: string;
  /** Path-style URLs (`endpoint/bucket/key`). Default: true when `endpoint` is set, else false. */
  forcePathStyle?: boolean;
  /** Default: the AWS SDK default provider chain (env, shared config/profile, web identity, instance role). */
  credentials?: S3Credentials;
  /** How to name the credentials in messages when `credentials` is given; default "credentials passed in options". */
  credentialsSource?: string;
  /** Checksum behaviour of the SDK; see {@link ChecksumSetting}. Default `default`. */
  checksums?: ChecksumSetting;
}

export const CHECKSUM_SETTINGS: readonly ChecksumSetting[] = ['default', 'when-required'];

export function validateConnection(options: S3ConnectionOptions): void {
  if (options.checksums !== undefined && !CHECKSUM_SETTINGS.includes(options.checksums)) {
    throw new ConfigError(`Invalid option "checksums" ${JSON.stringify(options.checksums)}: use "default" or "when-required".`, {
      scope: SCOPE,
    });
  }
  if (options.endpoint !== undefined) {
    let url: URL | undefined;
    try {
      url = new URL(options.endpoint);
    } catch {
      url = undefined;
    }
    if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
      throw new ConfigError(
        `Invalid option "endpoint" ${JSON.stringify(redactText(options.endpoint))}: use an http(s) URL such as https://s3.example.com:9000.`,
        { scope: SCOPE },
      );
    }
  }
}

function envRegion(): string | undefined {
  return process.env.AWS_REGION || process.env.AWS_DEFAULT_REGION || undefined;
}

export interface ClientTuning {
  /** Socket idle timeout and connect timeout, ms. */
  timeoutMs?: number;
}

/** A client with the SDK's own retries off: callers retry whole operations (request and body) themselves. */
export function createS3Client(options: S3ConnectionOptions, tuning: ClientTuning = {}): S3Client {
  validateConnection(options);
  const region = options.region || envRegion() || (options.endpoint ? 'us-east-1' : undefined);
  const config: S3ClientConfig = {
    maxAttempts: 1,
    forcePathStyle: options.forcePathStyle ?? options.endpoint !== undefined,
  };
  if (region) config.region = region;
  if (options.endpoint) config.endpoint = options.endpoint;
  if (options.credentials) config.credentials = options.credentials;
  if (options.checksums === 'when-required') {
    config.requestChecksumCalculation = 'WHEN_REQUIRED';
    config.responseChecksumValidation = 'WHEN_REQUIRED';
  }
  if (tuning.timeoutMs !== undefined) {
    config.requestHandler = {
      connectionTimeout: Math.min(tuning.timeoutMs, 10_000),
      requestTimeout: tuning.timeoutMs,
    };
  }
  return new S3Client(config);
}

/** Which credentials are used, for "access denied" messages; never the secret itself. */
export function describeCredentials(options: S3ConnectionOptions): string {
  if (options.credentials) return options.credentialsSource ?? 'credentials passed in options';
  const env = process.env;
  if (env.AWS_ACCESS_KEY_ID) {
    return 'the AWS SDK default chain (here: environment variables AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)';
  }
  if (env.AWS_PROFILE) return `the AWS SDK default chain (here: profile "${env.AWS_PROFILE}" of the shared AWS config)`;
  if (env.AWS_WEB_IDENTITY_TOKEN_FILE) return 'the AWS SDK default chain (here: web identity, AWS_WEB_IDENTITY_TOKEN_FILE)';
  return 'the AWS SDK default chain (env AWS_ACCESS_KEY_ID / profile / instance role)';
}

/** Where requests go, for messages. */
export function describeEndpoint(options: S3ConnectionOptions): string {
  if (options.endpoint) return redactText(options.endpoint);
  const region = options.region || envRegion();
  return region ? `AWS S3 (region ${region})` : 'AWS S3';
}

/** Strings that must never appear in a message: the static secret and session token, when known. */
export function secretsOf(options: S3ConnectionOptions): string[] {
  const out: string[] = [];
  const creds = options.credentials;
  if (creds && typeof creds === 'object') {
    if (creds.secretAccessKey) out.push(creds.secretAccessKey);
    if (creds.sessionToken) out.push(creds.sessionToken);
  }
  if (process.env.AWS_SECRET_ACCESS_KEY) out.push(process.env.AWS_SECRET_ACCESS_KEY);
  if (process.env.AWS_SESSION_TOKEN) out.push(process.env.AWS_SESSION_TOKEN);
  return out;
}

export function s3Url(bucket: string, key: string): string {
  return `s3://${bucket}/${key}`;
}
