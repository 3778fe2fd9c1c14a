import vm from 'node:vm';
import { describe, expect, it } from 'vitest';
import { ChecksInvalidError, MAX_CHECK_BYTES, MAX_PAYLOAD_BYTES, loadBundlePayload, verifyBundle } from '@gather/core';
import { asciiJson, buildRunner } from '../src/_runner.js';
import { parseDuration } from '../src/bundle.js';
import { buildBundle } from '../src/index.js';
import { FIXTURE, FIXTURE_PAYLOAD, KEYS, fixtureChecks } from './_helpers.js';

const CREATED = '2024-06-01T12:34:56Z';
const CREATED_SEC = Date.parse(CREATED) / 1000;

function load(runner: Buffer, maxBytes?: number): unknown {
  const sandbox: Record<string, unknown> = {};
  vm.runInNewContext(runner.toString(), sandbox, { timeout: 10_000 });
  return (sandbox.gatherBundle as { load(max?: number): unknown }).load(maxBytes);
}

describe('sequence and expiry in the signed manifest', () => {
  it('defaults the sequence to the creation time in Unix seconds, and stays reproducible', async () => {
    const a = await buildBundle({ checksDir: await fixtureChecks(), privateKeyPem: KEYS.privateKeyPem, created: CREATED });
    const b = await buildBundle({ checksDir: await fixtureChecks(), privateKeyPem: KEYS.privateKeyPem, created: CREATED });
    expect(a.manifest.sequence).toBe(CREATED_SEC);
    expect(a.manifest.expires_at).toBeUndefined();
    expect(a.sha256).toBe(b.sha256);
  });

  it('takes an explicit sequence and an expiry counted from the creation time', async () => {
    const options = {
      checksDir: await fixtureChecks(),
      privateKeyPem: KEYS.privateKeyPem,
      created: CREATED,
      sequence: 42,
      expiresInSec: 30 * 86400,
    };
    const built = await buildBundle(options);
    expect(verifyBundle(built.bytes, KEYS.publicKeyPem).manifest).toMatchObject({ sequence: 42, expires_at: '2024-07-01T12:34:56Z' });
    expect((await buildBundle(options)).sha256).toBe(built.sha256);
    await expect(buildBundle({ ...options, sequence: -1 })).rejects.toThrow(/Invalid sequence -1/);
  });

  it('parses durations', () => {
    expect([
      parseDuration('30d'),
      parseDuration('12h'),
      parseDuration('90m'),
      parseDuration('3600s'),
      parseDuration('60'),
      parseDuration('2w'),
    ]).toEqual([2592000, 43200, 5400, 3600, 60, 1209600]);
    for (const bad of ['', '0d', '-1d', '1y', '1.5h', '99999999999d'])
      expect(() => parseDuration(bad, '--expires-in')).toThrow(/Invalid --expires-in/);
  });
});

describe('size limits shared with the agent', () => {
  it('declares the decoded payload size in the manifest; the runner decodes exactly that much', async () => {
    const built = await buildBundle({ checksDir: await fixtureChecks(), privateKeyPem: KEYS.privateKeyPem, created: CREATED });
    const payloadBytes = asciiJson(FIXTURE_PAYLOAD).length;
    expect(built.manifest.payload_bytes).toBe(payloadBytes);
    expect(loadBundlePayload(verifyBundle(built.bytes, KEYS.publicKeyPem)).checks).toHaveLength(3);
  });

  it('the runner refuses a payload over the limit it is given, and stops decoding past the declared size', async () => {
    const payload = JSON.stringify({ prelude: 'x'.repeat(100_000), checks: [] });
    const runner = await buildRunner(payload);
    expect(load(runner)).toMatchObject({ checks: [] });
    expect(() => load(runner, 1000)).toThrow(`the payload is ${Buffer.byteLength(payload)} bytes, over the 1000-byte limit`);
    // A runner that declares less than its data holds fails instead of growing.
    const lying = await buildRunner(payload, 4096);
    expect(() => load(lying)).toThrow(/does not decode to its declared 4096 bytes/);
  });

  it('carries text past ASCII as \\u escapes: the runner returns it unchanged, payload_bytes counts the escaped size', async () => {
    const script = '#!/usr/bin/env bash\n# café — naïve ü 🙂\necho \'{"name":"x","type":"string","value":"é"}\'\n';
    const built = await buildBundle({
      checksDir: await fixtureChecks({ ...FIXTURE, 'abuse/run-utf': script }),
      privateKeyPem: KEYS.privateKeyPem,
      created: CREATED,
    });
    const payload = loadBundlePayload(verifyBundle(built.bytes, KEYS.publicKeyPem));
    expect(payload.checks.find((check) => check.id === 'utf')?.script).toBe(script);
    expect(built.manifest.payload_bytes).toBe(asciiJson(payload).length);
    expect(asciiJson(payload).length).toBeGreaterThan(Buffer.byteLength(JSON.stringify(payload)));
    // Nothing of the scripts shows in clear, the multi-byte text included.
    expect(built.bytes.includes(Buffer.from('café'))).toBe(false);
    await expect(buildRunner('{"prelude":"é","checks":[]}')).rejects.toThrow(/must be ASCII JSON/);
  });

  it('refuses a check script over MAX_CHECK_BYTES', async () => {
    const dir = await fixtureChecks({ ...FIXTURE, 'abuse/run-big': `#!/usr/bin/env bash\n# ${'x'.repeat(MAX_CHECK_BYTES)}\n` });
    const error = await buildBundle({ checksDir: dir, privateKeyPem: KEYS.privateKeyPem }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ChecksInvalidError);
    expect((error as Error).message).toMatch(
      new RegExp(`abuse/run-big: is \\d+ bytes, over the ${MAX_CHECK_BYTES}-byte limit of a check script`),
    );
  });

  it('refuses a bundle whose payload the agent would refuse', async () => {
    // Many checks just under the per-check limit add up to more than the payload limit.
    const files: Record<string, string> = { ...FIXTURE };
    const count = Math.ceil(MAX_PAYLOAD_BYTES / (MAX_CHECK_BYTES - 100)) + 1;
    for (let i = 0; i < count; i++) {
      const id = String.fromCharCode(97 + Math.floor(i / 26), 97 + (i % 26), 122);
      files[`analytics/run-${id}`] = `#!/usr/bin/env bash\n# ${'y'.repeat(MAX_CHECK_BYTES - 100)}\n`;
    }
    const error = await buildBundle({ checksDir: await fixtureChecks(files), privateKeyPem: KEYS.privateKeyPem }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ChecksInvalidError);
    expect((error as Error).message).toMatch(
      new RegExp(`the checks payload is \\d+ bytes, over the ${MAX_PAYLOAD_BYTES}-byte limit; agents would refuse it`),
    );
  });
});
