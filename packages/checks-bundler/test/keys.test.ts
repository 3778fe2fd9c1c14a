import { execFileSync } from 'node:child_process';
import { createPrivateKey, createPublicKey, generateKeyPairSync, verify } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, verifyBundle } from '@gather/core';
import { buildBundle, generateSigningKeyPair, parseSigningKey } from '../src/index.js';
import { FIXTURE_PAYLOAD, KEYS, evalRunner, fixtureChecks, members, tempDir } from './_helpers.js';

const CREATED = '2024-06-01T00:00:00Z';

function openssl(args: string[]): string {
  return execFileSync('openssl', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

describe('signing keys', () => {
  it('generateSigningKeyPair makes PKCS#8 / SPKI PEMs that openssl reads, and the pair matches', async () => {
    const { privateKeyPem, publicKeyPem } = generateSigningKeyPair();
    expect(privateKeyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n[\s\S]+\n-----END PRIVATE KEY-----\n$/);
    expect(publicKeyPem).toMatch(/^-----BEGIN PUBLIC KEY-----\n[\s\S]+\n-----END PUBLIC KEY-----\n$/);
    const dir = await tempDir();
    await writeFile(join(dir, 'key.pem'), privateKeyPem);
    expect(openssl(['pkey', '-in', join(dir, 'key.pem'), '-pubout'])).toBe(publicKeyPem);
    expect(openssl(['pkey', '-in', join(dir, 'key.pem'), '-noout', '-text'])).toMatch(/ED25519 Private-Key/);
  });

  it('a key made by "openssl genpkey -algorithm ed25519" signs bundles that its "openssl pkey -pubout" key verifies', async () => {
    const dir = await tempDir();
    const keyPath = join(dir, 'key.pem');
    const pubPath = join(dir, 'key.pub.pem');
    openssl(['genpkey', '-algorithm', 'ed25519', '-out', keyPath]);
    openssl(['pkey', '-in', keyPath, '-pubout', '-out', pubPath]);
    const built = await buildBundle({ checksDir: await fixtureChecks(), privateKeyPath: keyPath, created: CREATED });
    const m = members(built.bytes);
    const publicKeyPem = await readFile(pubPath, 'utf8');
    expect(verify(null, m['manifest.json']!, createPublicKey(publicKeyPem), m['manifest.sig']!)).toBe(true);
    expect(verifyBundle(built.bytes, publicKeyPem).manifest).toEqual(built.manifest);
    expect(evalRunner(m['runner.js']!)).toEqual(FIXTURE_PAYLOAD);
  });

  it('signatures are deterministic (ed25519), so the same key gives the same bundle', async () => {
    const checksDir = await fixtureChecks();
    const a = await buildBundle({ checksDir, privateKeyPem: KEYS.privateKeyPem, created: CREATED });
    const b = await buildBundle({ checksDir, privateKeyPem: Buffer.from(KEYS.privateKeyPem), created: CREATED });
    expect(b.bytes.equals(a.bytes)).toBe(true);
  });

  it.each([
    [
      'an RSA key',
      () => generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }),
      /it is an rsa key, gather bundles are signed with ed25519/,
    ],
    [
      'an EC key (SEC1 PEM)',
      () => generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({ type: 'sec1', format: 'pem' }),
      /it is an ec key/,
    ],
    ['an ed448 key', () => generateKeyPairSync('ed448').privateKey.export({ type: 'pkcs8', format: 'pem' }), /it is an ed448 key/],
    ['the public key', () => KEYS.publicKeyPem, /it is a public key; signing needs the private key/],
    [
      'an encrypted key',
      () => createPrivateKey(KEYS.privateKeyPem).export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'pw' }),
      /it is encrypted; decrypt it with "openssl pkey/,
    ],
    [
      'an OpenSSH key',
      () => '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n',
      /it is an OpenSSH key/,
    ],
    ['garbage', () => 'hello\n', /it is not a PEM private key/],
  ])('refuses %s with a clear error naming the file and how to make a key', async (_label, make, reason) => {
    const path = join(await tempDir(), 'key.pem');
    await writeFile(path, make());
    const error = await buildBundle({ checksDir: await fixtureChecks(), privateKeyPath: path, created: CREATED }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as Error).message;
    expect(message).toMatch(/^\[gather\] \[checks-bundler\] Cannot use the key file .*key\.pem to sign: /);
    expect(message).toMatch(reason);
    expect(message).toContain('gather-bundle keygen');
    expect(message).toContain('openssl genpkey -algorithm ed25519');
  });

  it('reports a missing key file with its path', async () => {
    const path = join(await tempDir(), 'absent.pem');
    await expect(buildBundle({ checksDir: await fixtureChecks(), privateKeyPath: path, created: CREATED })).rejects.toThrow(
      /Cannot read the signing key file .*absent\.pem \(ENOENT\)/,
    );
  });

  it('requires exactly one of privateKeyPem and privateKeyPath', async () => {
    const checksDir = await fixtureChecks();
    await expect(buildBundle({ checksDir, created: CREATED })).rejects.toThrow(/exactly one of privateKeyPem or privateKeyPath/);
    await expect(buildBundle({ checksDir, created: CREATED, privateKeyPem: KEYS.privateKeyPem, privateKeyPath: '/x' })).rejects.toThrow(
      /exactly one/,
    );
  });

  it('parseSigningKey accepts the pair generated here', () => {
    expect(parseSigningKey(KEYS.privateKeyPem).asymmetricKeyType).toBe('ed25519');
  });
});
