// Replay and rollback through the real S3 server and the real fetcher: someone with write access to the bucket
// (but not the signing key) points `latest` back at an older, validly signed bundle; every agent that ran the
// newer one refuses it. `gather-bundle rollback --key` is the way back: the old checks under a higher sequence.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildBundle, generateSigningKeyPair } from '@gather/checks-bundler';
import { publishBundle } from '@gather/fetcher-s3/publish';
import { agent, cleanEnv, makeChecksDir, ndjson, tempDir } from './_helpers.js';

function required(name: string): string {
  const value = process.env[name];
  if (!value)
    throw new Error(`${name} is not set: run this test through the vitest "integration" project (tools/vitest-services.ts starts S3).`);
  return value;
}

const s3 = {
  endpoint: required('GATHER_S3_ENDPOINT'),
  accessKeyId: required('GATHER_S3_ACCESS_KEY_ID'),
  secretAccessKey: required('GATHER_S3_SECRET_ACCESS_KEY'),
  bucket: required('GATHER_S3_BUCKET'),
};
const BUNDLER_CLI = join(import.meta.dirname, '../node_modules/@gather/checks-bundler/dist/cli.js');
// The raw S3 API, as an attacker with write access uses it (the SDK is a dependency of fetcher-s3, not of the agent).
const { S3Client, PutObjectCommand } = createRequire(join(import.meta.dirname, '../node_modules/@gather/fetcher-s3/package.json'))(
  '@aws-sdk/client-s3',
) as {
  S3Client: new (options: object) => { send(command: unknown): Promise<unknown>; destroy(): void };
  PutObjectCommand: new (input: object) => unknown;
};

describe('replay through S3', () => {
  it('refuses an older bundle put back as latest (exit 3, bundle_replayed); gather-bundle rollback republishes it under a higher sequence', async () => {
    const keys = generateSigningKeyPair();
    const prefix = `agent-replay/${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
    const connection = {
      endpoint: s3.endpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
      bucket: s3.bucket,
      prefix,
    };
    const build = async (value: number, sequence: number) =>
      (
        await buildBundle({
          checksDir: makeChecksDir({ 'abuse/run-abc': `output bundle.value number ${value}` }),
          privateKeyPem: keys.privateKeyPem,
          sequence,
          version: `v${value}`,
        })
      ).bytes;
    const v1 = await build(1, 1000);
    const v2 = await build(2, 2000);
    await publishBundle({ ...connection, bundle: v1 });
    await publishBundle({ ...connection, bundle: v2 });

    const dir = tempDir('gather-replay-');
    const publicKeyPath = join(dir, 'signing.pub.pem');
    const privateKeyPath = join(dir, 'signing.pem');
    writeFileSync(publicKeyPath, keys.publicKeyPem);
    writeFileSync(privateKeyPath, keys.privateKeyPem, { mode: 0o600 });
    const env = cleanEnv({
      GATHER_BUNDLE: `s3://${s3.bucket}/${prefix}`,
      GATHER_PUBLIC_KEY: publicKeyPath,
      GATHER_S3_ENDPOINT: s3.endpoint,
      GATHER_S3_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: s3.accessKeyId,
      AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
      GATHER_STATE_DIR: join(dir, 'state'),
    });
    const resultValue = (stdout: string) => ndjson(stdout).find((doc) => doc.kind === 'result')?.value;

    const first = await agent(['run'], { env });
    expect(first.code).toBe(0);
    expect(resultValue(first.stdout)).toBe(2);

    // S3 write access alone: latest written back to v1 (already signed, already published). gather-bundle
    // publish refuses to do it, so the attacker writes the pointer with the plain S3 API.
    await expect(publishBundle({ ...connection, bundle: v1 })).rejects.toThrow(/its sequence 1000 is lower than 2000/);
    const client = new S3Client({ endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: connection.credentials });
    await client.send(
      new PutObjectCommand({
        Bucket: s3.bucket,
        Key: `${prefix}/latest`,
        Body: JSON.stringify({ format: 1, version: 'v1', key: `${prefix}/v1.tar` }),
      }),
    );
    client.destroy();
    const replayed = await agent(['run'], { env });
    expect(replayed.code).toBe(3);
    expect(replayed.stderr).toMatch(/bundle v1 with sequence 1000, older than sequence 2000 already accepted/);
    expect(ndjson(replayed.stdout)).toMatchObject([
      { kind: 'error', reason: 'bundle_replayed' },
      { kind: 'run', outcome: 'bundle_replayed' },
    ]);
    expect((await agent(['verify'], { env })).code).toBe(3);

    // The way back: the old checks, re-signed under a higher sequence.
    const rollback = spawnSync(
      process.execPath,
      [BUNDLER_CLI, 'rollback', '--to', 'v1', '--key', privateKeyPath, '--bucket', s3.bucket, '--prefix', prefix],
      {
        encoding: 'utf8',
        env: {
          PATH: process.env.PATH ?? '',
          GATHER_S3_ENDPOINT: s3.endpoint,
          GATHER_S3_ACCESS_KEY_ID: s3.accessKeyId,
          GATHER_S3_SECRET_ACCESS_KEY: s3.secretAccessKey,
        },
      },
    );
    expect(rollback.stderr).not.toMatch(/\[gather\]/);
    expect(rollback.status).toBe(0);
    expect(rollback.stdout).toContain('Republished the checks of v1 as v1-r2001 (sequence 2001)');
    const after = await agent(['run'], { env });
    expect(after.code).toBe(0);
    expect(resultValue(after.stdout)).toBe(1);
    expect(ndjson(after.stdout).find((doc) => doc.kind === 'result')).toMatchObject({ bundle: { version: 'v1-r2001' } });
  });
});
