import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { generateSigningKeyPair } from '@gather/checks-bundler';
import { tar, type TarEntry } from '@gather/core/testing';
import { agent, makeBundleFile, ndjson, tempDir, type Fixture } from './_helpers.js';

// Every bundle here holds a check that would create the sentinel file: a refusal must leave it absent.
const sentinel = join(tempDir(), 'check-ran');
let fx: Fixture;
let members: TarEntry[];

beforeAll(async () => {
  fx = await makeBundleFile({ 'abuse/run-abc': `touch ${sentinel}; output ran boolean true` });
  const dir = tempDir();
  execFileSync('tar', ['-xf', fx.bundlePath, '-C', dir]);
  members = ['manifest.json', 'manifest.sig', 'runner.js'].map((name) => ({ name, data: readFileSync(join(dir, name)) }));
});

function write(bytes: Buffer): string {
  const path = join(tempDir(), 'bad.tar');
  writeFileSync(path, bytes);
  return path;
}

const flipLastByte = (data: Buffer | string | undefined) => {
  const copy = Buffer.from(data ?? '');
  copy[copy.length - 2]! ^= 1;
  return copy;
};

const cases: Array<[string, () => { bundle: string; publicKey?: string }, RegExp]> = [
  [
    'a bundle signed by another key',
    () => {
      const other = join(tempDir(), 'other.pub.pem');
      writeFileSync(other, generateSigningKeyPair().publicKeyPem);
      return { bundle: fx.bundlePath, publicKey: other };
    },
    /bad signature/,
  ],
  [
    'a forged manifest',
    () => ({ bundle: write(tar(members.map((m) => (m.name === 'manifest.json' ? { ...m, data: flipLastByte(m.data) } : m)))) }),
    /bad signature/,
  ],
  ['an unsigned bundle', () => ({ bundle: write(tar(members.filter((m) => m.name !== 'manifest.sig'))) }), /unsigned/],
  [
    'a runner that does not match the manifest hash',
    () => ({ bundle: write(tar(members.map((m) => (m.name === 'runner.js' ? { ...m, data: flipLastByte(m.data) } : m)))) }),
    /manifest hash mismatch for "runner.js"/,
  ],
  [
    'a truncated tar',
    () => ({ bundle: write(readFileSync(fx.bundlePath).subarray(0, readFileSync(fx.bundlePath).length - 1100)) }),
    /truncated/,
  ],
  [
    'a tar entry with ..',
    () => ({ bundle: write(tar([{ name: '../../etc/cron.d/x', data: 'x' }, ...members])) }),
    /contains "\.\." \(path traversal\)/,
  ],
  [
    'a tar entry with an absolute path',
    () => ({ bundle: write(tar([{ name: '/etc/cron.d/x', data: 'x' }, ...members])) }),
    /absolute path/,
  ],
  ['a symlink', () => ({ bundle: write(tar([...members, { name: 'runner2.js', type: '2', linkname: '/etc/shadow' }])) }), /is a symlink/],
  ['a device', () => ({ bundle: write(tar([...members, { name: 'mem', type: '3' }])) }), /is a character device/],
];

describe('bundle refusals', () => {
  it('the untampered bundle runs the sentinel check (control)', async () => {
    const control = await makeBundleFile({ 'abuse/run-abc': `touch ${sentinel}-control; output ran boolean true` });
    const result = await agent(['run', '--bundle', control.bundlePath, '--public-key', control.publicKeyPath]);
    expect(result.code).toBe(0);
    expect(existsSync(`${sentinel}-control`)).toBe(true);
  });

  it.each(cases)('refuses %s: exit 3, the problem named, no check executed', async (_label, make, problem) => {
    const { bundle, publicKey } = make();
    const result = await agent(['run', '--bundle', bundle, '--public-key', publicKey ?? fx.publicKeyPath]);
    expect(result.code).toBe(3);
    expect(result.stderr).toMatch(problem);
    expect(result.stderr).toMatch(/No check was run/);
    expect(ndjson(result.stdout)).toMatchObject([
      { kind: 'error', reason: 'bundle_refused' },
      { kind: 'run', outcome: 'bundle_refused', checks: { run: 0 } },
    ]);
    expect(existsSync(sentinel)).toBe(false);
  });

  it.each(cases)('verify refuses %s with exit 3', async (_label, make, problem) => {
    const { bundle, publicKey } = make();
    const result = await agent(['verify', '--bundle', bundle, '--public-key', publicKey ?? fx.publicKeyPath]);
    expect(result.code).toBe(3);
    expect(result.stderr).toMatch(problem);
  });

  it('verify accepts a good bundle and lists its checks without running them', async () => {
    const result = await agent(['verify', '--bundle', fx.bundlePath, '--public-key', fx.publicKeyPath]);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^ok: bundle \S+ \(sha256 [0-9a-f]{64}, created .+\)\nabuse: abc\nanalytics: \(none\)\n$/);
    expect(existsSync(sentinel)).toBe(false);
  });
});

describe('public keys that are not what they claim', () => {
  it('refuses a private key given as --public-key: exit 2, nothing fetched or run', async () => {
    const keys = generateSigningKeyPair();
    const path = join(tempDir(), 'signing.pem');
    writeFileSync(path, keys.privateKeyPem);
    for (const command of ['run', 'verify']) {
      const result = await agent([command, '--bundle', fx.bundlePath, '--public-key', path]);
      expect(result.code).toBe(2);
      expect(result.stderr).toMatch(/publicKey: public key file .*signing\.pem: this is a private key; ship only the public half/);
    }
    expect(existsSync(sentinel)).toBe(false);
  });

  it('says a key file that is not an ed25519 public key is exactly that (not "cannot read")', async () => {
    const { generateKeyPairSync } = await import('node:crypto');
    const path = join(tempDir(), 'ec.pub.pem');
    writeFileSync(path, generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }));
    const result = await agent(['run', '--bundle', fx.bundlePath, '--public-key', path]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/ec\.pub\.pem is not an ed25519 public key \(found an EC public key\)/);
    expect(result.stderr).not.toMatch(/Cannot read/);
  });
});
