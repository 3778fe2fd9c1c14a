/**
 * Publishing bundles (used by `gather-bundle publish` / `rollback` in CI):
 *
 * 1. the bundle goes to `<prefix>/<version>.tar`, never overwritten (conditional write `If-None-Match: *`),
 *    with its sha256 in the object metadata; multipart above a threshold;
 * 2. then the pointer `<prefix>/latest` is moved to it. Agents only ever follow the pointer, so none reads a
 *    half-written bundle. Rolling back is republishing an old version under a higher sequence (rollback.ts).
 */
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  PutObjectCommand,
  UploadPartCommand,
  type CompletedPart,
} from '@aws-sdk/client-s3';
import { ConfigError, GatherError, MAX_BUNDLE_BYTES } from '@gather/core';
import { SCOPE, s3Url } from '../client.js';
import { isPreconditionFailed } from '../_errors.js';
import { SEQUENCE_METADATA, SHA256_METADATA, VERSION_METADATA, pointerKey, versionKey } from '../_layout.js';
import { readBundleManifest } from './manifest.js';
import { PublishError, checkBucket, head, movePointer, readPointer, session, type BucketOptions, type Session } from './session.js';

const MiB = 1024 * 1024;
/** S3's minimum part size (except for the last part). */
export const MIN_PART_BYTES = 5 * MiB;
export const DEFAULT_MULTIPART_THRESHOLD = 8 * MiB;
export const DEFAULT_PART_BYTES = 8 * MiB;

export interface PublishOptions extends BucketOptions {
  /** The bundle file (from `gather-bundle build`). Exactly one of bundlePath / bundle. */
  bundlePath?: string;
  bundle?: Uint8Array;
  /** Verify the bundle (signature, member hashes) with this ed25519 public key PEM before uploading. */
  publicKeyPem?: string | Buffer;
  /** Bundles of at least this many bytes are uploaded in parts. Default 8 MiB. */
  multipartThresholdBytes?: number;
  /** Part size for multipart uploads, at least 5 MiB. Default 8 MiB. */
  partSizeBytes?: number;
  /** Parts uploaded in parallel. Default 4. */
  concurrency?: number;
  /** Move `<prefix>/latest` to the new version (default true); false only uploads it (move later with rollback). */
  movePointer?: boolean;
}

export interface PublishResult {
  version: string;
  bucket: string;
  /** `<prefix>/<version>.tar` */
  key: string;
  pointerKey: string;
  sha256: string;
  size: number;
  /** False when the very same bundle was already published under this version (a re-run): nothing uploaded. */
  uploaded: boolean;
  /** Parts of the multipart upload; 0 for a single PutObject or when nothing was uploaded. */
  parts: number;
  /** Whether `latest` was written (false when it already named this version, or movePointer is false). */
  pointerMoved: boolean;
  /** The version `latest` named before, if any. */
  previousVersion?: string;
}

function positiveInteger(value: number | undefined, name: string, fallback: number, min = 1): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < min) {
    throw new ConfigError(`Invalid option "${name}" ${value}: use an integer of at least ${min}.`, { scope: SCOPE });
  }
  return value;
}

/** Uploads `bytes` in parts; aborts the upload on any failure so no parts are left behind (and billed). */
async function uploadMultipart(
  s: Session,
  options: PublishOptions,
  key: string,
  bytes: Buffer,
  metadata: Record<string, string>,
  partSize: number,
  concurrency: number,
): Promise<number> {
  const bucket = options.bucket;
  const checksum = options.checksums === 'when-required' ? {} : ({ ChecksumAlgorithm: 'CRC32' } as const);
  let uploadId: string | undefined;
  try {
    const created = await s.send(() =>
      s.client.send(
        new CreateMultipartUploadCommand({ Bucket: bucket, Key: key, ContentType: 'application/x-tar', Metadata: metadata, ...checksum }),
      ),
    );
    uploadId = created.UploadId;
    if (!uploadId) throw new PublishError(`S3 returned no UploadId for a multipart upload to ${s3Url(bucket, key)}.`);
    const count = Math.ceil(bytes.length / partSize);
    const parts: CompletedPart[] = new Array(count);
    let next = 0;
    const worker = async () => {
      while (next < count) {
        const index = next++;
        const body = bytes.subarray(index * partSize, Math.min(bytes.length, (index + 1) * partSize));
        const uploaded = await s.send(() =>
          s.client.send(
            new UploadPartCommand({
              Bucket: bucket,
              Key: key,
              UploadId: uploadId,
              PartNumber: index + 1,
              Body: body,
              ContentLength: body.length,
              ...checksum,
            }),
          ),
        );
        parts[index] = {
          PartNumber: index + 1,
          ETag: uploaded.ETag,
          ...(uploaded.ChecksumCRC32 ? { ChecksumCRC32: uploaded.ChecksumCRC32 } : {}),
        };
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
    await s.send(() =>
      s.client.send(
        new CompleteMultipartUploadCommand({
          Bucket: bucket,
          Key: key,
          UploadId: uploadId,
          IfNoneMatch: '*',
          MultipartUpload: { Parts: parts },
        }),
      ),
    );
    return count;
  } catch (error) {
    if (uploadId) {
      await s.client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId })).catch(() => undefined);
    }
    throw error;
  }
}

function refuseOverwrite(bucket: string, key: string, version: string, existingSha: string | undefined, sha256: string): PublishError {
  return new PublishError(
    `Version "${version}" is already published at ${s3Url(bucket, key)} with different content ` +
      `(sha256 ${existingSha ?? 'unknown'}, this bundle ${sha256}). Published versions are never overwritten: ` +
      'build the bundle with a new version (gather-bundle build --bundle-version <new>) and publish that.',
  );
}

/**
 * Agents refuse a bundle with a lower sequence than one they ran: pointing `latest` at one (a re-run of an old
 * build) would stop every agent, so it is refused. The bundle itself stays uploaded.
 */
async function refuseOlderThanLatest(
  s: Session,
  bucket: string,
  prefix: string,
  sequence: number | undefined,
  version: string,
): Promise<void> {
  const current = await readPointer(s, bucket, prefix);
  if (!current || current.version === version) return;
  const latest = Number((await head(s, bucket, current.key))?.Metadata?.[SEQUENCE_METADATA]);
  if (!Number.isSafeInteger(latest) || (Number.isSafeInteger(sequence) && sequence! >= latest)) return;
  throw new PublishError(
    `Not moving ${s3Url(bucket, pointerKey(prefix))} to ${version}: its sequence ${sequence ?? '(none)'} is lower than ${latest}, the ` +
      `sequence of the current bundle ${current.version}, and agents that ran it would refuse it. Build it again with ` +
      `"gather-bundle build --sequence <n>" above ${latest}, or roll back with "gather-bundle rollback --to ${version} --key <private.pem>".`,
  );
}

/** Uploads a bundle under its immutable versioned key, then moves `<prefix>/latest` to it. */
export async function publishBundle(options: PublishOptions): Promise<PublishResult> {
  const { bucket, prefix } = checkBucket(options);
  if ((options.bundlePath === undefined) === (options.bundle === undefined)) {
    throw new ConfigError('Pass exactly one of options "bundlePath" (--bundle) and "bundle".', { scope: SCOPE });
  }
  const threshold = positiveInteger(options.multipartThresholdBytes, 'multipartThresholdBytes', DEFAULT_MULTIPART_THRESHOLD);
  const partSize = positiveInteger(options.partSizeBytes, 'partSizeBytes', DEFAULT_PART_BYTES, MIN_PART_BYTES);
  const concurrency = positiveInteger(options.concurrency, 'concurrency', 4);

  let bytes: Buffer;
  let source = 'the bundle';
  if (options.bundlePath !== undefined) {
    const path = resolve(options.bundlePath);
    source = path;
    try {
      const info = await stat(path);
      if (info.size > MAX_BUNDLE_BYTES) {
        throw new ConfigError(`${path} is ${info.size} bytes, over the ${MAX_BUNDLE_BYTES}-byte bundle limit.`, { scope: SCOPE });
      }
      bytes = await readFile(path);
    } catch (cause) {
      if (GatherError.isInstance(cause)) throw cause;
      throw new ConfigError(`Cannot read the bundle ${path} (${(cause as NodeJS.ErrnoException).code ?? cause}). Check --bundle.`, {
        scope: SCOPE,
        cause,
      });
    }
  } else {
    bytes = Buffer.from(options.bundle!.buffer, options.bundle!.byteOffset, options.bundle!.byteLength);
    if (bytes.length > MAX_BUNDLE_BYTES) {
      throw new ConfigError(`The bundle is ${bytes.length} bytes, over the ${MAX_BUNDLE_BYTES}-byte bundle limit.`, { scope: SCOPE });
    }
  }
  const manifest = readBundleManifest(bytes, {
    source,
    ...(options.publicKeyPem !== undefined ? { publicKeyPem: options.publicKeyPem } : {}),
  });
  const version = manifest.version;
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  const key = versionKey(prefix, version);
  const metadata: Record<string, string> = { [SHA256_METADATA]: sha256, [VERSION_METADATA]: version };
  if (Number.isSafeInteger(manifest.sequence)) metadata[SEQUENCE_METADATA] = String(manifest.sequence);

  const s = session(options, 'publish to');
  try {
    // Fast path for re-runs, and a clear refusal before uploading megabytes; the conditional write below is
    // what actually guarantees a version is never overwritten (two publishers racing: one gets 412).
    const existing = await head(s, bucket, key);
    let uploaded = false;
    let parts = 0;
    if (existing) {
      const existingSha = existing.Metadata?.[SHA256_METADATA];
      if (existingSha !== sha256) throw refuseOverwrite(bucket, key, version, existingSha, sha256);
    } else {
      try {
        if (bytes.length >= threshold) {
          parts = await uploadMultipart(s, options, key, bytes, metadata, partSize, concurrency);
        } else {
          const md5 = options.checksums === 'when-required' ? { ContentMD5: createHash('md5').update(bytes).digest('base64') } : {};
          await s.send(() =>
            s.client.send(
              new PutObjectCommand({
                Bucket: bucket,
                Key: key,
                Body: bytes,
                ContentLength: bytes.length,
                ContentType: 'application/x-tar',
                Metadata: metadata,
                IfNoneMatch: '*',
                ...md5,
              }),
            ),
          );
        }
        uploaded = true;
      } catch (error) {
        // 412: someone (or our own retried request) wrote the key meanwhile; fine only if it is this bundle.
        if (isPreconditionFailed(error) || (error as { name?: string })?.name === 'NoSuchUpload') {
          const now = await head(s, bucket, key);
          if (!now) throw s.fail(error, key);
          const nowSha = now.Metadata?.[SHA256_METADATA];
          if (nowSha !== sha256) throw refuseOverwrite(bucket, key, version, nowSha, sha256);
          parts = 0;
        } else {
          throw s.fail(error, key);
        }
      }
    }
    const result: PublishResult = {
      version,
      bucket,
      key,
      pointerKey: pointerKey(prefix),
      sha256,
      size: bytes.length,
      uploaded,
      parts,
      pointerMoved: false,
    };
    if (options.movePointer === false) return result;
    await refuseOlderThanLatest(s, bucket, prefix, manifest.sequence, version);
    const moved = await movePointer(s, bucket, prefix, { version, sha256, size: bytes.length });
    result.pointerMoved = moved.moved;
    if (moved.previousVersion !== undefined) result.previousVersion = moved.previousVersion;
    return result;
  } finally {
    s.close();
  }
}
