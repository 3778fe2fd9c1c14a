// Replay, rollback and expiry through the real CLI: a bundle older than the one a host accepted, or past its
// expiry, is refused with exit 3 and an error record naming why; nothing of it runs.
import { execFileSync } from 'node:child_process';
import { existsSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { generateSigningKeyPair } from '@gather/checks-bundler';
import { MAX_BUNDLE_BYTES } from '@gather/core';
import { agent, cleanEnv, makeBundleFile, ndjson, tempDir } from './_helpers.js';

const keys = generateSigningKeyPair();

async function bundleWith(sentinel: string, build: { sequence?: number; expiresInSec?: number; created?: string }) {
  return makeBundleFile({ 'abuse/run-abc': `touch ${sentinel}; output ran boolean true` }, undefined, { ...keys, ...build });
}

describe('replay protection', () => {
  it('refuses a bundle older than the one accepted from the same source: exit 3, bundle_replayed, nothing run', async () => {
    const dir = tempDir();
    const live = join(dir, 'check.tar');
    const env = cleanEnv({ GATHER_STATE_DIR: join(dir, 'state') });
    const newer = await bundleWith(join(dir, 'newer-ran'), { sequence: 200 });
    const older = await bundleWith(join(dir, 'older-ran'), { sequence: 100 });

    writeFileSync(live, newer.bundle);
    const first = await agent(['run', '--bundle', live, '--public-key', newer.publicKeyPath], { env });
    expect(first.code).toBe(0);
    expect(existsSync(join(dir, 'newer-ran'))).toBe(true);

    // Whoever can write where the bundle comes from puts the older, validly signed bundle back.
    writeFileSync(live, older.bundle);
    for (const command of [['verify'], ['run', '--dry-run']]) {
      const refused = await agent([...command, '--bundle', live, '--public-key', newer.publicKeyPath], { env });
      expect(refused.code).toBe(3);
      expect(refused.stderr).toMatch(/sequence 100, older than sequence 200 already accepted on this host/);
    }
    const replayed = await agent(['run', '--bundle', live, '--public-key', newer.publicKeyPath], { env });
    expect(replayed.code).toBe(3);
    expect(replayed.stderr).toMatch(/older than sequence 200.*gather-bundle rollback/);
    expect(ndjson(replayed.stdout)).toMatchObject([
      { kind: 'error', reason: 'bundle_replayed' },
      { kind: 'run', outcome: 'bundle_replayed', checks: { run: 0 } },
    ]);
    expect(existsSync(join(dir, 'older-ran'))).toBe(false);

    // The same bundle again is fine (an unchanged bundle), and so is a newer one.
    writeFileSync(live, newer.bundle);
    expect((await agent(['run', '--bundle', live, '--public-key', newer.publicKeyPath], { env })).code).toBe(0);
    // Another source has its own history.
    expect((await agent(['run', '--bundle', older.bundlePath, '--public-key', older.publicKeyPath], { env })).code).toBe(0);
  });

  it('refuses an expired bundle: exit 3, bundle_expired', async () => {
    const dir = tempDir();
    const fx = await bundleWith(join(dir, 'ran'), { created: '2026-01-01T00:00:00Z', expiresInSec: 3600 });
    const result = await agent(['run', '--bundle', fx.bundlePath, '--public-key', fx.publicKeyPath]);
    expect(result.code).toBe(3);
    expect(result.stderr).toMatch(/expired at 2026-01-01T01:00:00Z/);
    expect(ndjson(result.stdout)[0]).toMatchObject({ kind: 'error', reason: 'bundle_expired' });
    expect(existsSync(join(dir, 'ran'))).toBe(false);
    expect((await agent(['verify', '--bundle', fx.bundlePath, '--public-key', fx.publicKeyPath])).code).toBe(3);
  });
});

describe('bounded before parsed', () => {
  const publicKey = () => {
    const path = join(tempDir(), 'key.pub.pem');
    writeFileSync(path, keys.publicKeyPem);
    return path;
  };

  it.each([
    ['1.5 GB', 1.5e9],
    ['3 GiB', 3 * 1024 ** 3],
  ])('verify, run --dry-run and run refuse a %s (sparse) bundle from its size: exit 3', async (_label, size) => {
    const path = join(tempDir(), 'huge.tar');
    writeFileSync(path, '');
    truncateSync(path, size);
    for (const command of [['verify'], ['run', '--dry-run'], ['run']]) {
      const result = await agent([...command, '--bundle', path, '--public-key', publicKey()]);
      expect(result.code).toBe(3);
      expect(result.stderr).toContain(`${path} is ${size} bytes, over the ${MAX_BUNDLE_BYTES}-byte limit`);
    }
  });

  it('gather-bundle inspect refuses a 3 GiB (sparse) bundle from its size, with or without a key', () => {
    const path = join(tempDir(), 'huge.tar');
    writeFileSync(path, '');
    truncateSync(path, 3 * 1024 ** 3);
    const cli = join(import.meta.dirname, '../node_modules/@gather/checks-bundler/dist/cli.js');
    for (const extra of [[], ['--public-key', publicKey()]]) {
      let code = 0;
      let stderr = '';
      try {
        execFileSync(process.execPath, [cli, 'inspect', '--bundle', path, ...extra], { encoding: 'utf8', stdio: 'pipe' });
      } catch (error) {
        ({ status: code, stderr } = error as { status: number; stderr: string });
      }
      expect(code).toBe(1);
      expect(stderr).toContain(`is ${3 * 1024 ** 3} bytes, over the ${MAX_BUNDLE_BYTES}-byte limit`);
      expect(stderr).not.toMatch(/Unexpected error/);
    }
  });
});
