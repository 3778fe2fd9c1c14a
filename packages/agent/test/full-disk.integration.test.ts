// A full disk is the host's failure, not a fetch failure: the S3 fetcher cannot write its cache (a 64 KiB
// tmpfs filled up, mounted as <stateDir>/bundle-cache), and the run says so: exit 1 (not 4 "fetch failed"),
// outcome `failed`, error record `run_failed`, a message naming ENOSPC. Needs root (mount), as CI runs it.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
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

describe('a full disk while fetching', () => {
  it('exits 1 with the host failure named, not 4 "fetch failed"', async () => {
    const s3 = {
      endpoint: required('GATHER_S3_ENDPOINT'),
      accessKeyId: required('GATHER_S3_ACCESS_KEY_ID'),
      secretAccessKey: required('GATHER_S3_SECRET_ACCESS_KEY'),
      bucket: required('GATHER_S3_BUCKET'),
    };
    const keys = generateSigningKeyPair();
    const prefix = `agent-full-disk/${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
    const bundle = await buildBundle({
      checksDir: makeChecksDir({ 'abuse/run-abc': 'output a number 1' }),
      privateKeyPem: keys.privateKeyPem,
    });
    await publishBundle({
      endpoint: s3.endpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
      bucket: s3.bucket,
      prefix,
      bundle: bundle.bytes,
    });

    const dir = tempDir('gather-full-disk-');
    const cache = join(dir, 'state', 'bundle-cache');
    mkdirSync(cache, { recursive: true, mode: 0o700 });
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k,mode=0700', 'gather-test-full', cache]);
    try {
      // Fill it: nothing more can be written there.
      writeFileSync(join(cache, 'filler'), Buffer.alloc(64 * 1024));
      const publicKeyPath = join(dir, 'signing.pub.pem');
      writeFileSync(publicKeyPath, keys.publicKeyPem);
      const result = await agent(['run'], {
        env: cleanEnv({
          GATHER_BUNDLE: `s3://${s3.bucket}/${prefix}`,
          GATHER_PUBLIC_KEY: publicKeyPath,
          GATHER_S3_ENDPOINT: s3.endpoint,
          GATHER_S3_REGION: 'us-east-1',
          AWS_ACCESS_KEY_ID: s3.accessKeyId,
          AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
          GATHER_STATE_DIR: join(dir, 'state'),
        }),
      });
      const docs = ndjson(result.stdout);
      expect(docs).toMatchObject([
        { kind: 'error', reason: 'run_failed', message: expect.stringMatching(/^The host failed the run: ENOSPC/) },
        { kind: 'run', outcome: 'failed', message: expect.stringMatching(/ENOSPC/) },
      ]);
      expect(result.stderr).toMatch(/this host did: .*ENOSPC/);
      expect(result.code).toBe(1);
    } finally {
      execFileSync('umount', [cache]);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
