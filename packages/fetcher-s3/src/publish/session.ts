/**
 * What publish and rollback share: one S3 session per command (client, retried sends, errors that say what
 * to do), the pointer `<prefix>/latest` (read, move) and the list of published versions.
 */
import {
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type HeadObjectCommandOutput,
  type S3Client,
} from '@aws-sdk/client-s3';
import { ConfigError, GatherError, retryPolicy, withRetry, type RetryOptions } from '@gather/core';
import { SCOPE, createS3Client, describeCredentials, describeEndpoint, secretsOf, type S3ConnectionOptions } from '../client.js';
import { describeS3Error, isNotFound, isTransient } from '../_errors.js';
import {
  MAX_POINTER_BYTES,
  normalizePrefix,
  parsePointer,
  pointerKey,
  serializePointer,
  validateVersion,
  versionKey,
  type BundlePointer,
} from '../_layout.js';

/** Publishing or rolling back failed on the S3 side; the message names bucket, key and what to do. */
export class PublishError extends GatherError {
  override name = 'PublishError';
  constructor(message: string, options?: { cause?: unknown }) {
    super('GATHER_PUBLISH', message, { ...options, scope: SCOPE });
  }
  static override isInstance(error: unknown): error is PublishError {
    return GatherError.isInstance(error) && error.code === 'GATHER_PUBLISH';
  }
}

export interface BucketOptions extends S3ConnectionOptions {
  /** An existing client (its own retry settings apply too); default: one built from the connection options. */
  client?: S3Client;
  bucket: string;
  /** Key prefix, e.g. "gather/prod": bundles go to `<prefix>/<version>.tar`, the pointer is `<prefix>/latest`. */
  prefix: string;
  /** Retries of transient failures per request. Default 3 attempts, 200 ms base, full jitter. */
  retry?: RetryOptions;
  signal?: AbortSignal;
}

export interface PublishedVersion {
  version: string;
  key: string;
  size: number;
  lastModified?: Date;
}

export function checkBucket(options: BucketOptions): { bucket: string; prefix: string } {
  if (!options?.bucket) throw new ConfigError('Missing option "bucket". Pass it (--bucket) or set GATHER_S3_BUCKET.', { scope: SCOPE });
  return { bucket: options.bucket, prefix: normalizePrefix(options.prefix) };
}

/** A client plus retried, error-mapped sends for one publish/rollback. */
export function session(options: BucketOptions, action: string) {
  const client = options.client ?? createS3Client(options);
  const policy = retryPolicy(options.retry);
  const endpoint = describeEndpoint(options);
  const credentialsSource = describeCredentials(options);
  const secrets = secretsOf(options);
  const bucket = options.bucket;
  return {
    client,
    /** Runs one request with retries; raw errors come out so callers can branch on 404/412. */
    send<T>(operation: () => Promise<T>): Promise<T> {
      return withRetry(operation, isTransient, policy, options.signal);
    },
    fail(error: unknown, key: string, notFoundHint?: string): GatherError {
      if (GatherError.isInstance(error)) return error;
      const message = describeS3Error(error, {
        action,
        bucket,
        key,
        endpoint,
        credentialsSource,
        secrets,
        ...(notFoundHint ? { notFoundHint } : {}),
      });
      return new PublishError(message, { cause: error });
    },
    close() {
      if (!options.client) client.destroy();
    },
  };
}

export type Session = ReturnType<typeof session>;

export async function head(s: Session, bucket: string, key: string): Promise<HeadObjectCommandOutput | undefined> {
  try {
    return await s.send(() => s.client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }), {}));
  } catch (error) {
    if (isNotFound(error)) return undefined;
    throw s.fail(error, key);
  }
}

/** The pointer as it is now, or undefined when there is none (or it is unreadable). */
export async function readPointer(s: Session, bucket: string, prefix: string): Promise<BundlePointer | undefined> {
  const key = pointerKey(prefix);
  try {
    return await s.send(async () => {
      const response = await s.client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      if ((response.ContentLength ?? 0) > MAX_POINTER_BYTES) return undefined;
      const text = (await response.Body?.transformToString('utf8')) ?? '';
      try {
        return parsePointer(text, prefix);
      } catch {
        return undefined;
      }
    });
  } catch (error) {
    if (isNotFound(error)) return undefined;
    throw s.fail(error, key);
  }
}

async function writePointer(s: Session, bucket: string, prefix: string, pointer: BundlePointer): Promise<void> {
  const key = pointerKey(prefix);
  try {
    await s.send(() =>
      s.client.send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: key,
          Body: serializePointer(pointer),
          ContentType: 'application/json',
          // Caches in front of S3 (CDN, proxies) must revalidate: agents rely on the ETag to notice a move.
          CacheControl: 'no-cache',
        }),
      ),
    );
  } catch (error) {
    throw s.fail(error, key);
  }
}

export async function movePointer(
  s: Session,
  bucket: string,
  prefix: string,
  target: { version: string; sha256?: string; size?: number },
): Promise<{ moved: boolean; previousVersion?: string }> {
  const current = await readPointer(s, bucket, prefix);
  const previous = current ? { previousVersion: current.version } : {};
  if (current && current.version === target.version && current.sha256 === target.sha256 && current.size === target.size) {
    return { moved: false, ...previous };
  }
  const pointer: BundlePointer = {
    format: 1,
    version: target.version,
    key: versionKey(prefix, target.version),
    ...(target.sha256 ? { sha256: target.sha256 } : {}),
    ...(target.size !== undefined ? { size: target.size } : {}),
    published: new Date().toISOString(),
  };
  await writePointer(s, bucket, prefix, pointer);
  return { moved: true, ...previous };
}

/** The versions published under a prefix, newest first. */
export async function listBundleVersions(options: BucketOptions): Promise<PublishedVersion[]> {
  const { bucket, prefix } = checkBucket(options);
  const s = session(options, 'list');
  try {
    return await listWith(s, bucket, prefix);
  } finally {
    s.close();
  }
}

export async function listWith(s: Session, bucket: string, prefix: string): Promise<PublishedVersion[]> {
  const versions: PublishedVersion[] = [];
  let token: string | undefined;
  do {
    const page = await s
      .send(() =>
        s.client.send(
          new ListObjectsV2Command({
            Bucket: bucket,
            Prefix: `${prefix}/`,
            Delimiter: '/',
            ...(token ? { ContinuationToken: token } : {}),
          }),
        ),
      )
      .catch((error: unknown) => {
        throw s.fail(error, `${prefix}/`);
      });
    for (const object of page.Contents ?? []) {
      const name = object.Key?.slice(prefix.length + 1) ?? '';
      if (!name.endsWith('.tar')) continue;
      const version = name.slice(0, -'.tar'.length);
      try {
        validateVersion(version);
      } catch {
        continue;
      }
      versions.push({
        version,
        key: object.Key!,
        size: object.Size ?? 0,
        ...(object.LastModified ? { lastModified: object.LastModified } : {}),
      });
    }
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return versions.sort((a, b) => (b.lastModified?.getTime() ?? 0) - (a.lastModified?.getTime() ?? 0));
}
