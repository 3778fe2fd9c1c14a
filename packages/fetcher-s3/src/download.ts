// Verified download: a bundle is streamed into a temp file next to its target, checked, and only then
// renamed into place, so it is there whole or not at all. Checked: the size limit, the byte count against
// Content-Length, the sha256 the pointer and the object metadata name, and a plain MD5 ETag.
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { GetObjectCommandOutput } from '@aws-sdk/client-s3';
import { MAX_BUNDLE_BYTES, READ_NO_FOLLOW } from '@gather/core';
import { s3Url } from './client.js';
import { IntegrityError, TruncatedBodyError } from './_errors.js';
import { SHA256_METADATA } from './_layout.js';
import type { ConditionalGet, GetRequest } from './conditional-get.js';

/** What the publisher said about the object. */
export interface Expected {
  /** Where `sha256` and `size` come from, for messages (e.g. "pointer <prefix>/latest"). */
  what: string;
  sha256?: string;
  size?: number;
}

export interface DownloadRequest extends GetRequest {
  expected: Expected;
  targetDir: string;
  /** The file name of the verified bundle in `targetDir`. */
  fileName: (sha256: string) => string;
  /** fsync before the rename: the file is kept between runs. */
  durable: boolean;
}

export interface Downloaded {
  path: string;
  etag: string | undefined;
  sha256: string;
  size: number;
  /** Body bytes of the attempt that made the bundle (failed attempts are not counted). */
  bytes: number;
}

interface Digest {
  size: number;
  sha256: string;
  md5: string;
}

export interface DownloadSettings {
  bucket: string;
  /** Compare a plain MD5 ETag with the bytes (option verifyEtag). */
  verifyEtag: boolean;
}

/** Downloads `request.key`; resolves undefined on 304 (only when `ifNoneMatch` is set). */
export async function downloadVerified(
  get: ConditionalGet,
  settings: DownloadSettings,
  request: DownloadRequest,
): Promise<Downloaded | undefined> {
  const url = s3Url(settings.bucket, request.key);
  let result: Downloaded | undefined;
  const modified = await get(request, async (response) => {
    const body = response.Body as Readable | undefined;
    if (!body) throw new IntegrityError(`S3 returned no body for ${url}.`);
    const announced = response.ContentLength;
    if (announced !== undefined && announced > MAX_BUNDLE_BYTES) {
      body.destroy();
      throw new IntegrityError(`${url} is ${announced} bytes, over the ${MAX_BUNDLE_BYTES}-byte bundle limit: it is not a gather bundle.`);
    }
    const tmp = join(request.targetDir, `.bundle-${randomBytes(8).toString('hex')}.part`);
    try {
      const digest = await streamToFile(body, tmp, url, request.signal);
      if (announced !== undefined && digest.size !== announced) throw new TruncatedBodyError(digest.size, announced);
      verifyDigest(url, digest, response, request.expected, settings.verifyEtag);
      if (request.durable) await fsync(tmp);
      const path = join(request.targetDir, request.fileName(digest.sha256));
      await rename(tmp, path);
      result = { path, etag: response.ETag, sha256: digest.sha256, size: digest.size, bytes: digest.size };
    } catch (error) {
      await rm(tmp, { force: true });
      throw error;
    }
  });
  return modified ? result : undefined;
}

/** Writes `body` to a new file `path`, hashing and counting on the way; stops at the bundle size limit. */
async function streamToFile(body: Readable, path: string, url: string, signal: AbortSignal): Promise<Digest> {
  const sha = createHash('sha256');
  const md5 = createHash('md5');
  let size = 0;
  const meter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      size += chunk.length;
      if (size > MAX_BUNDLE_BYTES) {
        callback(new IntegrityError(`${url} is over the ${MAX_BUNDLE_BYTES}-byte bundle limit: it is not a gather bundle.`));
        return;
      }
      sha.update(chunk);
      md5.update(chunk);
      callback(null, chunk);
    },
  });
  await pipeline(body, meter, createWriteStream(path, { flags: 'wx', mode: 0o600 }), { signal });
  return { size, sha256: sha.digest('hex'), md5: md5.digest('hex') };
}

function verifyDigest(url: string, digest: Digest, response: GetObjectCommandOutput, expected: Expected, verifyEtag: boolean): void {
  const published: [string, string | undefined][] = [
    [expected.what, expected.sha256],
    ['object metadata (x-amz-meta-sha256)', response.Metadata?.[SHA256_METADATA]],
  ];
  for (const [where, want] of published) {
    if (want && want.toLowerCase() !== digest.sha256) {
      throw new IntegrityError(
        `${url} does not match the sha256 in its ${where} (got ${digest.sha256}, expected ${want}): the object changed after ` +
          'it was published. Publish a new version, or roll back with "gather-bundle rollback --to <version>".',
      );
    }
  }
  if (expected.size !== undefined && digest.size !== expected.size) {
    throw new IntegrityError(`${url} is ${digest.size} bytes but its ${expected.what} says ${expected.size}. Publish it again.`);
  }
  // Multipart and KMS/SSE-C objects have ETags that are not the MD5 of their bytes.
  const etag = response.ETag?.replace(/"/g, '');
  const sse = response.ServerSideEncryption ?? '';
  if (verifyEtag && etag && /^[0-9a-f]{32}$/i.test(etag) && !sse.startsWith('aws:kms') && !response.SSECustomerAlgorithm) {
    if (digest.md5 !== etag.toLowerCase()) {
      throw new IntegrityError(
        `${url} does not match its ETag (MD5 ${digest.md5}, ETag ${etag}). If this server's ETags are not MD5 digests, pass verifyEtag: false.`,
      );
    }
  }
}

async function fsync(path: string): Promise<void> {
  const handle = await open(path, READ_NO_FOLLOW);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
