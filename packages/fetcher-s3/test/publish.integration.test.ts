// publish / rollback against the real S3 server of tools/services, with the SDK's default checksums.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GetObjectCommand, HeadObjectCommand, ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { readTar } from '@gather/core';
import { makeBundle, makeKeys } from '@gather/core/testing';
import { createS3Fetcher } from '../src/index.js';
import {
  listBundleVersions,
  publishBundle,
  publishCommand,
  readBundleManifest,
  rollbackBundle,
  rollbackCommand,
  type CommandIo,
} from '../src/publish/index.js';
import { FAST_RETRY, bundle, connection, sha256, startProxy, tar, s3TestScope, tempDir } from './_helpers.js';

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

/** Stands in for gather-bundle's signer: the same bundle, under a new version and sequence. */
async function resign(bytes: Buffer, sequence: number): Promise<Uint8Array> {
  const members = readTar(bytes);
  const manifest = JSON.parse(members.find((m) => m.name === 'manifest.json')!.data.toString()) as Record<string, unknown>;
  const next = { ...manifest, version: `${String(manifest.version)}-r${sequence}`, sequence };
  return tar(
    members.map((m) => (m.name === 'manifest.json' ? { name: m.name, data: JSON.stringify(next) } : { name: m.name, data: m.data })),
  );
}

describe('rollbackBundle', () => {
  it('republishes an older version under a new, higher sequence (signed by the given signer) and points latest to it', async () => {
    const prefix = newPrefix('rollback');
    await publishBundle({ ...connection(env), bucket, prefix, bundle: bundle('1.0.0', 4096, 10) });
    await publishBundle({ ...connection(env), bucket, prefix, bundle: bundle('2.0.0', 4096, 20) });
    expect((await listBundleVersions({ ...connection(env), bucket, prefix })).map((v) => v.version).sort()).toEqual(['1.0.0', '2.0.0']);

    // Moving the pointer back would only get the bundle refused by every agent: without the key, no rollback.
    const unsigned = (await rollbackBundle({ ...connection(env), bucket, prefix, to: '1.0.0' }).catch((e: unknown) => e)) as Error;
    expect(unsigned.message).toMatch(
      /Rolling back to "1.0.0" \(sequence 10\) needs the signing key.*sequences up to 20 are published.*--key/,
    );
    expect(JSON.parse(await objectText(`${prefix}/latest`)).version).toBe('2.0.0');

    const result = await rollbackBundle({ ...connection(env), bucket, prefix, to: '1.0.0', sign: resign });
    expect(result).toMatchObject({
      version: '1.0.0-r21',
      from: '1.0.0',
      sequence: 21,
      republished: true,
      previousVersion: '2.0.0',
      pointerMoved: true,
    });
    expect(JSON.parse(await objectText(`${prefix}/latest`))).toMatchObject({ version: '1.0.0-r21', key: `${prefix}/1.0.0-r21.tar` });
    const republished = readBundleManifest(await objectBytes(`${prefix}/1.0.0-r21.tar`));
    expect(republished).toMatchObject({ version: '1.0.0-r21', sequence: 21 });

    const low = (await rollbackBundle({ ...connection(env), bucket, prefix, to: '1.0.0', sign: resign, sequence: 21 }).catch(
      (e: unknown) => e,
    )) as Error;
    expect(low.message).toMatch(/Sequence 21 is not higher than 21, the highest sequence published/);

    const error = (await rollbackBundle({ ...connection(env), bucket, prefix, to: '9.9.9' }).catch((e: unknown) => e)) as Error;
    expect(error.message).toContain(`Cannot roll back to "9.9.9": s3://${bucket}/${prefix}/9.9.9.tar does not exist.`);
    expect(error.message).toMatch(/Published versions \(newest first\): .*1\.0\.0/);
  });

  it('publish refuses to point latest at a bundle older than the current one (agents would refuse it)', async () => {
    const prefix = newPrefix('older');
    await publishBundle({ ...connection(env), bucket, prefix, bundle: bundle('2.0.0', 4096, 20) });
    const error = (await publishBundle({ ...connection(env), bucket, prefix, bundle: bundle('1.0.0', 4096, 10) }).catch(
      (e: unknown) => e,
    )) as Error;
    expect(error.message).toMatch(
      /Not moving .*latest to 1\.0\.0: its sequence 10 is lower than 20, the sequence of the current bundle 2\.0\.0/,
    );
    expect(JSON.parse(await objectText(`${prefix}/latest`)).version).toBe('2.0.0');
    expect(await exists(`${prefix}/1.0.0.tar`)).toBe(true);
  });

  it('rolls forward to a newer uploaded version without re-signing', async () => {
    const prefix = newPrefix('forward');
    await publishBundle({ ...connection(env), bucket, prefix, bundle: bundle('1.0.0', 4096, 1) });
    await publishBundle({ ...connection(env), bucket, prefix, bundle: bundle('2.0.0', 4096, 2), movePointer: false });
    const result = await rollbackBundle({ ...connection(env), bucket, prefix, to: '2.0.0' });
    expect(result).toMatchObject({ version: '2.0.0', sequence: 2, republished: false, previousVersion: '1.0.0', pointerMoved: true });
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
    for (const [version, sequence] of [
      ['1.0.0', 1],
      ['1.1.0', 2],
    ] as const)
      writeFileSync(join(dir, `${version}.tar`), bundle(version, 4096, sequence));

    const first = io();
    expect(await publishCommand(['--bundle', join(dir, '1.0.0.tar'), '--bucket', bucket, '--prefix', prefix], first)).toBe(0);
    expect(first.out).toContain(`Published 1.0.0 to s3://${bucket}/${prefix}/1.0.0.tar`);
    expect(first.out).toContain(`Pointer s3://${bucket}/${prefix}/latest -> 1.0.0.`);

    const second = io();
    expect(await publishCommand(['--bundle', join(dir, '1.1.0.tar'), '--bucket', bucket, '--prefix', prefix, '--json'], second)).toBe(0);
    expect(JSON.parse(second.out)).toMatchObject({ version: '1.1.0', previousVersion: '1.0.0', pointerMoved: true });

    const noKey = io();
    expect(await rollbackCommand(['--to', '1.0.0', '--bucket', bucket, '--prefix', prefix], noKey)).toBe(1);
    expect(noKey.err).toMatch(/needs the signing key/);

    const back = io();
    const signer = async () => resign;
    expect(
      await rollbackCommand(['--to', '1.0.0', '--key', 'k.pem', '--sequence', '7', '--bucket', bucket, '--prefix', prefix], back, {
        signer,
      }),
    ).toBe(0);
    expect(back.out).toBe(
      `Republished the checks of 1.0.0 as 1.0.0-r7 (sequence 7) at s3://${bucket}/${prefix}/1.0.0-r7.tar.\n` +
        `Pointer s3://${bucket}/${prefix}/latest -> 1.0.0-r7 (was 1.1.0).\n`,
    );

    const missing = io();
    expect(await rollbackCommand(['--to', '0.0.1', '--bucket', bucket, '--prefix', prefix], missing)).toBe(1);
    expect(missing.err).toContain('Cannot roll back to "0.0.1"');
    expect(missing.err).not.toContain(env.secretAccessKey);
  });
});
