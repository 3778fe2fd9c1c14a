// Acceptance test of the local S3 server (tools/services, S3Proxy with SigV4 auth) with the real
// @aws-sdk/client-s3. Runs against GATHER_S3_ENDPOINT and the GATHER_S3_* credentials, which
// tools/vitest-services.ts sets (or a user's own S3 when they are already set). Fails, never skips, when
// they are missing.
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

function requireEnv(name: string): string {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set: run the integration tests through tools/vitest-services.ts (vitest project "integration")`);
  }
  return value;
}

const endpoint = requireEnv('GATHER_S3_ENDPOINT');
const accessKeyId = requireEnv('GATHER_S3_ACCESS_KEY_ID');
const secretAccessKey = requireEnv('GATHER_S3_SECRET_ACCESS_KEY');
const defaultBucket = requireEnv('GATHER_S3_BUCKET');
const bucket = `gather-it-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;

function makeClient(secret: string, options: { checksums?: 'WHEN_SUPPORTED' | 'WHEN_REQUIRED' } = {}): S3Client {
  return new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId, secretAccessKey: secret },
    ...(options.checksums ? { requestChecksumCalculation: options.checksums } : {}),
  });
}

async function httpStatusOf(promise: Promise<unknown>): Promise<number | undefined> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof S3ServiceException) return error.$metadata.httpStatusCode;
    throw error;
  }
  throw new Error('expected the request to fail');
}

const sha256 = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');

let s3: S3Client;
// Streamed bodies: with its default (WHEN_SUPPORTED) the SDK sends a stream as aws-chunked with a CRC32
// trailer (STREAMING-UNSIGNED-PAYLOAD-TRAILER). S3Proxy 4.1.0 stores such objects correctly but may answer
// before it has read the trailer and close the connection, so a few percent of those uploads fail on the
// client with `write EPIPE` (measured: 9 of 160 under concurrency; 0 of 160 with WHEN_REQUIRED). The SDK
// cannot retry a stream, so stream uploads to S3Proxy use WHEN_REQUIRED (plain body, UNSIGNED-PAYLOAD).
let s3ForStreams: S3Client;

beforeAll(() => {
  s3 = makeClient(secretAccessKey);
  s3ForStreams = makeClient(secretAccessKey, { checksums: 'WHEN_REQUIRED' });
});

afterAll(async () => {
  const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket })).catch(() => undefined);
  for (const object of listed?.Contents ?? []) {
    await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: object.Key })).catch(() => undefined);
  }
  await s3.send(new DeleteBucketCommand({ Bucket: bucket })).catch(() => undefined);
  s3.destroy();
  s3ForStreams.destroy();
});

describe('local S3 server', () => {
  test('the default bucket exists', async () => {
    await s3.send(new HeadBucketCommand({ Bucket: defaultBucket }));
  });

  test('create bucket, put (buffer and stream), get, head, list, conditional get', async () => {
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));

    const buffer = Buffer.from('{"hello":"world"}\n');
    const put = await s3.send(
      new PutObjectCommand({ Bucket: bucket, Key: 'results/a.json', Body: buffer, ContentType: 'application/json' }),
    );
    expect(put.ETag).toBe(`"${createHash('md5').update(buffer).digest('hex')}"`);

    const streamed = randomBytes(256 * 1024);
    await s3ForStreams.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: 'results/b.bin',
        Body: Readable.from([streamed.subarray(0, 100_000), streamed.subarray(100_000)]),
        ContentLength: streamed.length,
      }),
    );

    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'results/a.json' }));
    expect(await got.Body?.transformToString()).toBe(buffer.toString());
    expect(got.ContentType).toBe('application/json');

    const gotStream = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'results/b.bin' }));
    expect(sha256(await gotStream.Body!.transformToByteArray())).toBe(sha256(streamed));

    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'results/b.bin' }));
    expect(head.ContentLength).toBe(streamed.length);

    const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'results/' }));
    expect(listed.Contents?.map((object) => object.Key).sort()).toEqual(['results/a.json', 'results/b.bin']);

    const paged = await s3.send(new ListObjectsV2Command({ Bucket: bucket, MaxKeys: 1 }));
    expect(paged.IsTruncated).toBe(true);
    const page2 = await s3.send(new ListObjectsV2Command({ Bucket: bucket, MaxKeys: 1, ContinuationToken: paged.NextContinuationToken }));
    expect(page2.Contents?.map((object) => object.Key)).toEqual(['results/b.bin']);

    expect(await httpStatusOf(s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'results/a.json', IfNoneMatch: put.ETag })))).toBe(304);
    const changed = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'results/a.json', IfNoneMatch: '"0000"' }));
    expect(await changed.Body?.transformToString()).toBe(buffer.toString());

    expect(await httpStatusOf(s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'results/missing' })))).toBe(404);
  });

  test('multipart upload of 12 MB', async () => {
    await s3.send(new CreateBucketCommand({ Bucket: bucket })).catch(() => undefined);
    const data = randomBytes(12 * 1024 * 1024);
    const key = 'big/multipart.bin';
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
    expect(UploadId).toBeTruthy();
    try {
      const partSize = 5 * 1024 * 1024;
      const parts: { ETag: string; PartNumber: number }[] = [];
      for (let offset = 0, partNumber = 1; offset < data.length; offset += partSize, partNumber++) {
        const part = await s3.send(
          new UploadPartCommand({
            Bucket: bucket,
            Key: key,
            UploadId,
            PartNumber: partNumber,
            Body: data.subarray(offset, offset + partSize),
          }),
        );
        parts.push({ ETag: part.ETag!, PartNumber: partNumber });
      }
      expect(parts).toHaveLength(3);
      const done = await s3.send(
        new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId, MultipartUpload: { Parts: parts } }),
      );
      expect(done.ETag).toMatch(/-3"$/);
    } catch (error) {
      await s3.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId })).catch(() => undefined);
      throw error;
    }
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    expect(head.ContentLength).toBe(data.length);
    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    expect(sha256(await got.Body!.transformToByteArray())).toBe(sha256(data));
  });

  test('a wrong secret key is refused with 403', async () => {
    const wrong = makeClient(`${secretAccessKey}-wrong`);
    try {
      expect(await httpStatusOf(wrong.send(new ListObjectsV2Command({ Bucket: defaultBucket })))).toBe(403);
      expect(await httpStatusOf(wrong.send(new PutObjectCommand({ Bucket: defaultBucket, Key: 'nope', Body: 'x' })))).toBe(403);
    } finally {
      wrong.destroy();
    }
  });
});
