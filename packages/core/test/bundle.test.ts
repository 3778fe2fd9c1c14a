import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { BundleRefusedError, ConfigError, loadBundlePayload, parsePublicKey, readTar, verifyBundle } from '../src/index.js';
import { check, makeBundle, makeKeys, tar, type TarEntry } from './_fixtures.js';

const keys = makeKeys();
const checks = [check('abc', 'echo hi'), check('def', 'echo there', 'analytics', 5)];

function refusal(bundle: Buffer, publicKey = keys.publicKeyPem): string {
  try {
    verifyBundle(bundle, publicKey);
  } catch (error) {
    expect(error).toBeInstanceOf(BundleRefusedError);
    expect((error as BundleRefusedError).code).toBe('GATHER_BUNDLE_REFUSED');
    return (error as Error).message;
  }
  throw new Error('expected the bundle to be refused');
}

const replace = (name: string, data: Buffer | string) => (members: TarEntry[]) =>
  members.map((m) => (m.name === name ? { ...m, data } : m));

describe('verifyBundle', () => {
  it('accepts a bundle signed with the matching key and decodes its checks', () => {
    const verified = verifyBundle(makeBundle({ keys, checks, prelude: 'p() { :; }' }), keys.publicKeyPem);
    expect(verified.manifest.checks).toEqual({ abuse: ['abc'], analytics: ['def'] });
    expect(verified.sha256).toMatch(/^[0-9a-f]{64}$/);
    const payload = loadBundlePayload(verified);
    expect(payload.prelude).toBe('p() { :; }');
    expect(payload.checks).toEqual(checks);
  });

  it('refuses a bundle signed with another key', () => {
    expect(refusal(makeBundle({ keys: makeKeys(), checks }))).toMatch(/bad signature/);
  });

  it('refuses a manifest changed after signing', () => {
    const bundle = makeBundle({
      keys,
      checks,
      tamper: (members) =>
        members.map((m) => (m.name === 'manifest.json' ? { ...m, data: String(m.data).replace('test-1', 'test-2') } : m)),
    });
    expect(refusal(bundle)).toMatch(/bad signature/);
  });

  it('refuses an unsigned bundle', () => {
    const bundle = makeBundle({ keys, checks, tamper: (members) => members.filter((m) => m.name !== 'manifest.sig') });
    expect(refusal(bundle)).toMatch(/unsigned/);
  });

  it('refuses a runner whose hash differs from the signed manifest', () => {
    expect(
      refusal(makeBundle({ keys, checks, tamper: replace('runner.js', 'globalThis.gatherBundle={load:()=>({prelude:"",checks:[]})}') })),
    ).toMatch(/hash mismatch for "runner.js"/);
  });

  it('refuses a member that the manifest does not list', () => {
    const bundle = makeBundle({ keys, checks, tamper: (members) => [...members, { name: 'extra.sh', data: 'rm -rf /' }] });
    expect(refusal(bundle)).toMatch(/"extra.sh" is not listed/);
  });

  it.each([
    ['a path with ..', { name: '../evil', data: 'x' }, /path traversal/],
    ['an absolute path', { name: '/etc/cron.d/evil', data: 'x' }, /absolute path/],
    ['a symlink', { name: 'link', type: '2', linkname: '/etc/passwd' }, /is a symlink/],
    ['a hard link', { name: 'hard', type: '1', linkname: 'runner.js' }, /is a hard link/],
    ['a character device', { name: 'dev', type: '3' }, /is a character device/],
    ['a directory', { name: 'dir/', type: '5' }, /is a directory/],
  ] as const)('refuses a tar entry with %s', (_label, entry, message) => {
    const bundle = makeBundle({ keys, checks, tamper: (members) => [entry as TarEntry, ...members] });
    expect(refusal(bundle)).toMatch(message);
  });

  it('refuses a truncated bundle, wherever it was cut', () => {
    const bundle = makeBundle({ keys, checks });
    for (const length of [0, 100, 700, bundle.length - 1024, bundle.length - 600]) {
      expect(refusal(bundle.subarray(0, length))).toMatch(/truncated|signature|missing|no manifest/);
    }
    expect(refusal(bundle.subarray(0, bundle.length - 1024))).toMatch(/truncated/);
  });

  it('refuses a corrupted header', () => {
    const bundle = Buffer.from(makeBundle({ keys, checks }));
    bundle[10] = 0x41;
    expect(refusal(bundle)).toMatch(/checksum mismatch/);
  });

  it('refuses a runner that declares checks the manifest does not list', () => {
    const manifestChecks = [check('abc', 'echo hi')];
    // Re-sign a manifest whose runner carries an extra check: signature and hashes pass, the payload must not.
    const members: TarEntry[] = [];
    const runner = `globalThis.gatherBundle={load:()=>(${JSON.stringify({ prelude: '', checks: [...manifestChecks, check('zzz', 'touch /tmp/x')] })})}`;
    const manifest = JSON.stringify({
      format: 1,
      version: 'v',
      created: '2026-01-01T00:00:00Z',
      sequence: 1,
      payload_bytes: 100,
      checks: { abuse: ['abc'], analytics: [] },
      files: { 'runner.js': createHash('sha256').update(runner).digest('hex') },
    });
    members.push(
      { name: 'manifest.json', data: manifest },
      { name: 'manifest.sig', data: sign(null, Buffer.from(manifest), keys.privateKey) },
      { name: 'runner.js', data: runner },
    );
    const verified = verifyBundle(tar(members), keys.publicKeyPem);
    expect(() => loadBundlePayload(verified)).toThrow(/"zzz" \(abuse\) is not in the signed manifest/);
  });

  it('evaluates the runner without Node globals', () => {
    const runner = 'globalThis.gatherBundle={load:()=>({prelude:typeof process+typeof require,checks:[]})}';
    const manifest = JSON.stringify({
      format: 1,
      version: 'v',
      created: '2026-01-01T00:00:00Z',
      sequence: 1,
      payload_bytes: 100,
      checks: { abuse: [], analytics: [] },
      files: { 'runner.js': createHash('sha256').update(runner).digest('hex') },
    });
    const bundle = tar([
      { name: 'manifest.json', data: manifest },
      { name: 'manifest.sig', data: sign(null, Buffer.from(manifest), keys.privateKey) },
      { name: 'runner.js', data: runner },
    ]);
    expect(loadBundlePayload(verifyBundle(bundle, keys.publicKeyPem)).prelude).toBe('undefinedundefined');
  });

  it('rejects a public key that is not ed25519, saying how to make one', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
    expect(() => verifyBundle(makeBundle({ keys, checks }), rsa)).toThrow(ConfigError);
    expect(() => verifyBundle(makeBundle({ keys, checks }), 'not a key')).toThrow(/gather-bundle keygen/);
  });
});

describe('keys are what they claim', () => {
  it('refuses a private key given as the public key, PEM text or key object', () => {
    const pem = keys.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    expect(() => parsePublicKey(pem, 'key.pem')).toThrow(/key\.pem: this is a private key; ship only the public half/);
    expect(() => parsePublicKey(keys.privateKey)).toThrow(/this is a private key/);
    expect(() => verifyBundle(makeBundle({ keys, checks }), pem)).toThrow(ConfigError);
  });

  it('says that a readable key which is not an ed25519 public key is exactly that', () => {
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
    expect(() => parsePublicKey(ec, 'ec.pem')).toThrow(/ec\.pem is not an ed25519 public key \(found an EC public key\)/);
    expect(() => parsePublicKey('hello\n', 'notes.txt')).toThrow(
      /notes\.txt is not an ed25519 public key \(no PEM "BEGIN PUBLIC KEY" block/,
    );
  });
});

describe('tars are what they claim', () => {
  const good = () => Buffer.from(makeBundle({ keys, checks }));
  const endOf = (bundle: Buffer) => bundle.length - 1024;

  it('refuses non-zero padding after a member', () => {
    const bundle = good();
    const entries = readTar(bundle);
    const manifest = entries[0]!;
    const paddingAt = manifest.data.byteOffset - bundle.byteOffset + manifest.data.length;
    expect(paddingAt % 512).not.toBe(0);
    bundle[paddingAt] = 0x41;
    expect(refusal(bundle)).toMatch(/padding after tar entry "manifest.json" is not zeros/);
  });

  it('refuses a tar without its two zero end-of-archive blocks', () => {
    const bundle = good();
    expect(refusal(bundle.subarray(0, endOf(bundle) + 512))).toMatch(/no end-of-archive marker/);
    const second = Buffer.from(bundle);
    second[endOf(bundle) + 600] = 1;
    expect(refusal(second)).toMatch(/no end-of-archive marker/);
  });

  it('refuses bytes after the end-of-archive marker, and accepts zero record padding', () => {
    const bundle = good();
    expect(refusal(Buffer.concat([bundle, Buffer.from('#!/bin/sh\n')]))).toMatch(/non-zero bytes after its end-of-archive marker/);
    expect(verifyBundle(Buffer.concat([bundle, Buffer.alloc(8192)]), keys.publicKeyPem).manifest.version).toBe('test-1');
    // A byte hidden far out in a long zero tail (the zeros are compared a slice at a time).
    const tail = Buffer.alloc(64 * 1024);
    tail[tail.length - 1] = 1;
    expect(refusal(Buffer.concat([bundle, tail]))).toMatch(/non-zero bytes after its end-of-archive marker/);
    expect(verifyBundle(Buffer.concat([bundle, Buffer.alloc(64 * 1024 + 3)]), keys.publicKeyPem).manifest.version).toBe('test-1');
  });
});
