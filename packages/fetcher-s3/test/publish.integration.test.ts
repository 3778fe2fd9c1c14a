// publish / rollback against the real S3 server of tools/services, with the SDK's default checksums.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
} from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { makeBundle, makeKeys } from '../../core/test/_fixtures.js';
import {
  createS3Fetcher,
  listBundleVersions,
  publishBundle,
  publishCommand,
  rollbackBundle,
  rollbackCommand,
  type CommandIo,
} from '../src/index.js';
import {
  FAST_RETRY,
  bundle,
  connection,
  sha256,
  startProxy,
  s3TestScope,
  tempDir,
  type Proxy,
} from './_helpers.js';

const { env, bucket, admin, proxies, newPrefix } = s3TestScope();
const MiB = 1024 * 1024;

async function objectText(key: string): Promise<string> {
  const response = await admin.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return response.Body!.transformToString();
}

async function objectBytes(key: string): Promise<Buffer> {
  const response = await admin.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return Buffer.from(await response.Body!.transformToByteArray());
}

async function exists(key: string): Promise<boolean> {
  try {
    await admin.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    return true;
  } catch (error) {
    if ((error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return false;
    throw error;
  }
}

describe('publishBundle', () => {
  it('uploads <prefix>/<version>.tar with its sha256 in metadata, then points <prefix>/latest at it', async () => {
    const prefix = newPrefix('publish');
    const bytes = bundle('2024.06.01-1');
    const path = join(tempDir(), 'check.tar');
    writeFileSync(path, bytes);
    const result = await publishBundle({ ...connection(env), bucket, prefix, bundlePath: path });
    expect(result).toMatchObject({
      version: '2024.06.01-1',
      key: `${prefix}/2024.06.01-1.tar`,
      pointerKey: `${prefix}/latest`,
      sha256: sha256(bytes),
      size: bytes.length,
      uploaded: true,
      parts: 0,
      pointerMoved: true,
    });
    expect(result.previousVersion).toBeUndefined();
    const head = await admin.send(new HeadObjectCommand({ Bucket: bucket, Key: result.key }));
    expect(head.Metadata).toMatchObject({ sha256: sha256(bytes), 'bundle-version': '2024.06.01-1' });
    expect(sha256(await objectBytes(result.key))).toBe(sha256(bytes));
    expect(JSON.parse(await objectText(`${prefix}/latest`))).toMatchObject({
      format: 1,
      version: '2024.06.01-1',
      key: result.key,
      sha256: sha256(bytes),
      size: bytes.length,
    });
  });

  it('refuses to overwrite a published version with different content, and leaves object and pointer alone', async () => {
    const prefix = newPrefix('immutable');
    const original = bundle('1.0.0');
    await publishBundle({ ...connection(env), bucket, prefix, bundle: original });
    await publishBundle({ ...connection(env), bucket, prefix, bundle: bundle('1.0.1') });
    const pointerBefore = await objectText(`${prefix}/latest`);

    const error = (await publishBundle({ ...connection(env), bucket, prefix, bundle: bundle('1.0.0') }).catch((e: unknown) => e)) as Error;
    expect(error).toMatchObject({ name: 'PublishError' });
    expect(error.message).toContain(`Version "1.0.0" is already published at s3://${bucket}/${prefix}/1.0.0.tar with different content`);
    expect(error.message).toContain('never overwritten');
    expect(sha256(await objectBytes(`${prefix}/1.0.0.tar`))).toBe(sha256(original));
    expect(await objectText(`${prefix}/latest`)).toBe(pointerBefore);
  });

  it('two publishers racing with the same version: exactly one wins (conditional write), the other is refused', async () => {
    const prefix = newPrefix('race');
    const a = bundle('7.0.0');
    const b = bundle('7.0.0');
    const outcomes = await Promise.allSettled([
      publishBundle({ ...connection(env), bucket, prefix, bundle: a, movePointer: false }),
      publishBundle({ ...connection(env), bucket, prefix, bundle: b, movePointer: false }),
    ]);
    const won = outcomes.filter((o) => o.status === 'fulfilled');
    const lost = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected');
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(1);
    expect(String(lost[0]!.reason.message)).toContain('already published');
    const winner = outcomes[0]!.status === 'fulfilled' ? a : b;
    expect(sha256(await objectBytes(`${prefix}/7.0.0.tar`))).toBe(sha256(winner));
  });

  it('publishing the very same bundle again is a no-op (safe CI re-runs)', async () => {
    const prefix = newPrefix('rerun');
    const bytes = bundle('1.0.0');
    await publishBundle({ ...connection(env), bucket, prefix, bundle: bytes });
    const pointer = await objectText(`${prefix}/latest`);
    const again = await publishBundle({ ...connection(env), bucket, prefix, bundle: bytes });
    expect(again).toMatchObject({ uploaded: false, pointerMoved: false, previousVersion: '1.0.0' });
    expect(await objectText(`${prefix}/latest`)).toBe(pointer);
  });

  it('uses multipart above the threshold; the fetcher gets the exact bytes', async () => {
    const prefix = newPrefix('multipart');
    const bytes = bundle('3.0.0', 11 * MiB);
    const result = await publishBundle({
      ...connection(env),
      bucket,
      prefix,
      bundle: bytes,
      multipartThresholdBytes: 5 * MiB,
      partSizeBytes: 5 * MiB,
    });
    expect(result).toMatchObject({ uploaded: true, parts: 3 });
    const head = await admin.send(new HeadObjectCommand({ Bucket: bucket, Key: result.key }));
    expect(head.ETag).toMatch(/-3"$/);
    expect(head.ContentLength).toBe(bytes.length);
    expect(head.Metadata?.sha256).toBe(sha256(bytes));
    const fetched = await createS3Fetcher({ ...connection(env), bucket, prefix }).fetch({ dir: tempDir() });
    expect(sha256(readFileSync(fetched.path))).toBe(sha256(bytes));
  });

  it('a multipart upload that fails is aborted: no object, no parts left behind, pointer untouched', async () => {
    const prefix = newPrefix('multipart-fail');
    const failing = await startProxy(env.endpoint, (req) =>
      req.method === 'PUT' && /[?&]partNumber=2(&|$)/.test(req.url ?? '')
        ? { kind: 'status', status: 500, code: 'InternalError' }
        : { kind: 'forward' },
    );
    proxies.push(failing);
    const error = (await publishBundle({
      ...connection(env, failing.url),
      bucket,
      prefix,
      bundle: bundle('4.0.0', 11 * MiB),
      multipartThresholdBytes: 5 * MiB,
      partSizeBytes: 5 * MiB,
      retry: FAST_RETRY,
    }).catch((e: unknown) => e)) as Error;
    expect(error.message).toContain(`S3 kept failing for s3://${bucket}/${prefix}/4.0.0.tar`);
    expect(error.message).toContain('after 3 attempts');
    expect(failing.requests.filter((r) => r.status === 500)).toHaveLength(3);
    expect(failing.requests.some((r) => r.method === 'DELETE' && r.url.includes('uploadId='))).toBe(true);
    const uploads = await admin.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: `${prefix}/` }));
    expect(uploads.Uploads ?? []).toEqual([]);
    expect(await exists(`${prefix}/4.0.0.tar`)).toBe(false);
    expect(await exists(`${prefix}/latest`)).toBe(false);
  });

  it('verifies the signature first when given the public key; a bundle signed by another key is not uploaded', async () => {
    const prefix = newPrefix('verify');
    const keys = makeKeys();
    const signed = makeBundle({ keys, checks: [], version: '5.0.0' });
    const ok = await publishBundle({ ...connection(env), bucket, prefix, bundle: signed, publicKeyPem: keys.publicKeyPem });
    expect(ok.version).toBe('5.0.0');
    const other = makeBundle({ keys: makeKeys(), checks: [], version: '5.0.1' });
    await expect(
      publishBundle({ ...connection(env), bucket, prefix, bundle: other, publicKeyPem: keys.publicKeyPem }),
    ).rejects.toMatchObject({ name: 'BundleRefusedError' });
    expect(await exists(`${prefix}/5.0.1.tar`)).toBe(false);
  });
});

describe('rollbackBundle', () => {
  it('moves latest to a published version, and lists the versions when asked for a missing one', async () => {
    const prefix = newPrefix('rollback');
    await publishBundle({ ...connection(env), bucket, prefix, bundle: bundle('1.0.0') });
    await publishBundle({ ...connection(env), bucket, prefix, bundle: bundle('2.0.0') });
    expect((await listBundleVersions({ ...connection(env), bucket, prefix })).map((v) => v.version).sort()).toEqual(['1.0.0', '2.0.0']);

    const result = await rollbackBundle({ ...connection(env), bucket, prefix, to: '1.0.0' });
    expect(result).toMatchObject({ version: '1.0.0', previousVersion: '2.0.0', pointerMoved: true });
    expect(JSON.parse(await objectText(`${prefix}/latest`))).toMatchObject({ version: '1.0.0', key: `${prefix}/1.0.0.tar` });

    const error = (await rollbackBundle({ ...connection(env), bucket, prefix, to: '9.9.9' }).catch((e: unknown) => e)) as Error;
    expect(error.message).toContain(`Cannot roll back to "9.9.9": s3://${bucket}/${prefix}/9.9.9.tar does not exist.`);
    expect(error.message).toMatch(/Published versions \(newest first\): (2\.0\.0, 1\.0\.0|1\.0\.0, 2\.0\.0)\./);
    expect(JSON.parse(await objectText(`${prefix}/latest`)).version).toBe('1.0.0');
  });
});

describe('publishCommand / rollbackCommand (gather-bundle publish / rollback)', () => {
  function io(): CommandIo & { out: string; err: string } {
    const captured = {
      out: '',
      err: '',
      stdout: (text: string) => {
        captured.out += text;
      },
      stderr: (text: string) => {
        captured.err += text;
      },
      env: {
        GATHER_S3_ENDPOINT: env.endpoint,
        GATHER_S3_ACCESS_KEY_ID: env.accessKeyId,
        GATHER_S3_SECRET_ACCESS_KEY: env.secretAccessKey,
      },
    };
    return captured;
  }

  it('publishes, rolls back, and exits 1 with the reason on a missing version', async () => {
    const prefix = newPrefix('cli');
    const dir = tempDir();
    for (const version of ['1.0.0', '1.1.0']) writeFileSync(join(dir, `${version}.tar`), bundle(version));

    const first = io();
    expect(await publishCommand(['--bundle', join(dir, '1.0.0.tar'), '--bucket', bucket, '--prefix', prefix], first)).toBe(0);
    expect(first.out).toContain(`Published 1.0.0 to s3://${bucket}/${prefix}/1.0.0.tar`);
    expect(first.out).toContain(`Pointer s3://${bucket}/${prefix}/latest -> 1.0.0.`);

    const second = io();
    expect(await publishCommand(['--bundle', join(dir, '1.1.0.tar'), '--bucket', bucket, '--prefix', prefix, '--json'], second)).toBe(0);
    expect(JSON.parse(second.out)).toMatchObject({ version: '1.1.0', previousVersion: '1.0.0', pointerMoved: true });

    const back = io();
    expect(await rollbackCommand(['--to', '1.0.0', '--bucket', bucket, '--prefix', prefix], back)).toBe(0);
    expect(back.out).toBe(`Pointer s3://${bucket}/${prefix}/latest -> 1.0.0 (was 1.1.0).\n`);

    const missing = io();
    expect(await rollbackCommand(['--to', '0.0.1', '--bucket', bucket, '--prefix', prefix], missing)).toBe(1);
    expect(missing.err).toContain('Cannot roll back to "0.0.1"');
    expect(missing.err).not.toContain(env.secretAccessKey);
  });
});
