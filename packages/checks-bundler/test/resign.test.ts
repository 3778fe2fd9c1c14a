import { describe, expect, it } from 'vitest';
import { loadBundlePayload, verifyBundle } from '@gather/core';
import { buildBundle, generateSigningKeyPair, resignBundle } from '../src/index.js';
import { KEYS, fixtureChecks, members } from './_helpers.js';

const CREATED = '2024-06-01T12:34:56Z';

describe('resignBundle (gather-bundle rollback)', () => {
  it('republishes the same checks under a new version and a higher sequence, signed again', async () => {
    const old = await buildBundle({
      checksDir: await fixtureChecks(),
      privateKeyPem: KEYS.privateKeyPem,
      created: CREATED,
      sequence: 10,
      version: '2024.06.01',
    });
    const again = await resignBundle(old.bytes, { privateKeyPem: KEYS.privateKeyPem, sequence: 31 });
    const verified = verifyBundle(again.bytes, KEYS.publicKeyPem);
    expect(verified.manifest).toMatchObject({
      version: '2024.06.01-r31',
      sequence: 31,
      created: old.manifest.created,
      checks: old.manifest.checks,
      files: old.manifest.files,
    });
    expect(members(again.bytes)['runner.js']).toEqual(members(old.bytes)['runner.js']);
    expect(loadBundlePayload(verified)).toEqual(loadBundlePayload(verifyBundle(old.bytes, KEYS.publicKeyPem)));
  });

  it('gives the republished bundle the old lifetime from now, or the one asked for', async () => {
    const old = await buildBundle({
      checksDir: await fixtureChecks(),
      privateKeyPem: KEYS.privateKeyPem,
      created: CREATED,
      expiresInSec: 7 * 86400,
    });
    const now = new Date('2026-12-01T00:00:00Z');
    expect((await resignBundle(old.bytes, { privateKeyPem: KEYS.privateKeyPem, sequence: 2e9, now })).manifest.expires_at).toBe(
      '2026-12-08T00:00:00Z',
    );
    expect(
      (await resignBundle(old.bytes, { privateKeyPem: KEYS.privateKeyPem, sequence: 2e9, now, expiresInSec: 3600 })).manifest.expires_at,
    ).toBe('2026-12-01T01:00:00Z');
  });

  it('re-signs only a bundle this key signed', async () => {
    const old = await buildBundle({ checksDir: await fixtureChecks(), privateKeyPem: KEYS.privateKeyPem, created: CREATED });
    await expect(resignBundle(old.bytes, { privateKeyPem: generateSigningKeyPair().privateKeyPem, sequence: 5 })).rejects.toThrow(
      /Cannot re-sign this bundle: Bundle refused: bad signature/,
    );
  });
});
