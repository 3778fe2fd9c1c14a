import { execFileSync } from 'node:child_process';
import { createPublicKey, verify } from 'node:crypto';
import { readdir, readFile, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import vm from 'node:vm';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadBundlePayload, verifyBundle } from '@gather/core';
import { buildBundle, writeBundle } from '../src/index.js';
import { asciiJson } from '../src/_runner.js';
import { FIXTURE_PAYLOAD, KEYS, evalRunner, fixtureChecks, members, parseTar, sha256, tempDir } from './_helpers.js';

const CREATED = '2024-06-01T12:34:56Z';
const CREATED_SEC = Date.parse(CREATED) / 1000;

describe('buildBundle', () => {
  it('produces a ustar with exactly manifest.json, manifest.sig, runner.js: mode 0644, root-owned, no owner names, mtime = created', async () => {
    const { bytes } = await buildBundle({ checksDir: await fixtureChecks(), privateKeyPem: KEYS.privateKeyPem, created: CREATED });

    const list = parseTar(bytes); // also asserts: exactly two zero blocks at the end, no record padding
    expect(list.map((m) => m.name)).toEqual(['manifest.json', 'manifest.sig', 'runner.js']);
    for (const m of list) {
      expect(m).toMatchObject({
        mode: '0000644',
        uid: '0000000',
        gid: '0000000',
        mtime: CREATED_SEC,
        typeflag: '0',
        magic: 'ustar\0',
        version: '00',
        uname: '',
        gname: '',
        prefix: '',
        linkname: '',
      });
    }
    expect(bytes.length % 512).toBe(0);
  });

  it('is listed cleanly by GNU tar', async () => {
    const dir = await tempDir();
    const out = join(dir, 'check.tar');
    await writeBundle({ checksDir: await fixtureChecks(), privateKeyPem: KEYS.privateKeyPem, created: CREATED, out });
    const listing = execFileSync('tar', ['--numeric-owner', '--full-time', '-tvf', out], {
      encoding: 'utf8',
      env: { ...process.env, TZ: 'UTC', LC_ALL: 'C' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const lines = listing.trim().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/^-rw-r--r-- 0\/0 +\d+ 2024-06-01 12:34:56 manifest\.json$/);
    expect(lines[1]).toMatch(/^-rw-r--r-- 0\/0 +64 2024-06-01 12:34:56 manifest\.sig$/);
    expect(lines[2]).toMatch(/^-rw-r--r-- 0\/0 +\d+ 2024-06-01 12:34:56 runner\.js$/);
  });

  it('writes manifest.json with stable key order, 2-space indent, a trailing newline and the runner hash', async () => {
    const built = await buildBundle({ checksDir: await fixtureChecks(), privateKeyPem: KEYS.privateKeyPem, created: CREATED });
    const m = members(built.bytes);
    const runner = m['runner.js']!;
    const payloadSha = sha256(asciiJson(FIXTURE_PAYLOAD));
    const expected =
      '{\n' +
      '  "format": 1,\n' +
      `  "version": "20240601-${payloadSha.slice(0, 12)}",\n` +
      '  "created": "2024-06-01T12:34:56Z",\n' +
      `  "sequence": ${CREATED_SEC},\n` +
      `  "payload_bytes": ${asciiJson(FIXTURE_PAYLOAD).length},\n` +
      '  "checks": {\n' +
      '    "abuse": [\n      "ssh",\n      "xmr"\n    ],\n' +
      '    "analytics": [\n      "upt"\n    ]\n' +
      '  },\n' +
      '  "files": {\n' +
      `    "runner.js": "${sha256(runner)}"\n` +
      '  }\n' +
      '}\n';
    expect(m['manifest.json']!.toString('utf8')).toBe(expected);
    expect(built.manifest).toEqual(JSON.parse(expected));
    expect(built.sha256).toBe(sha256(built.bytes));
  });

  it('signs the exact manifest bytes with ed25519 (raw 64-byte signature)', async () => {
    const built = await buildBundle({ checksDir: await fixtureChecks(), privateKeyPem: KEYS.privateKeyPem, created: CREATED });
    const m = members(built.bytes);
    const sig = m['manifest.sig']!;
    const publicKey = createPublicKey(KEYS.publicKeyPem);
    expect(sig).toHaveLength(64);
    expect(verify(null, m['manifest.json']!, publicKey, sig)).toBe(true);
    const tampered = Buffer.from(m['manifest.json']!);
    tampered[tampered.indexOf('"format": 1') + 10] = '2'.charCodeAt(0);
    expect(verify(null, tampered, publicKey, sig)).toBe(false);
  });

  it('runner.js, evaluated in a bare context (no Node globals), returns the exact prelude, scripts and timeouts', async () => {
    // The context really is bare: what a lazy decoder would reach for is absent.
    expect(vm.runInNewContext('[typeof require, typeof Buffer, typeof atob, typeof TextDecoder, typeof process].join()', {})).toBe(
      'undefined,undefined,undefined,undefined,undefined',
    );
    const built = await buildBundle({ checksDir: await fixtureChecks(), privateKeyPem: KEYS.privateKeyPem, created: CREATED });
    const payload = evalRunner(members(built.bytes)['runner.js']!);
    expect(payload).toEqual(FIXTURE_PAYLOAD);
    // No timeoutSec key at all when the script sets none.
    expect(Object.keys(payload.checks[0]!)).toEqual(['id', 'category', 'script']);
    // UTF-8 survives (multi-byte and astral characters).
    expect(payload.prelude).toContain('héllo wörld ✓ 日本');
    expect(payload.checks[0]!.script).toContain('🐧 penguin');
  });

  it('is accepted by @gather/core (the agent verifier) and decodes to the same payload', async () => {
    const built = await buildBundle({ checksDir: await fixtureChecks(), privateKeyPem: KEYS.privateKeyPem, created: CREATED });
    const verified = verifyBundle(built.bytes, KEYS.publicKeyPem);
    expect(verified.sha256).toBe(built.sha256);
    expect(verified.manifest).toEqual(built.manifest);
    expect(loadBundlePayload(verified)).toEqual(FIXTURE_PAYLOAD);
  });

  it('is refused by @gather/core under another public key', async () => {
    const built = await buildBundle({ checksDir: await fixtureChecks(), privateKeyPem: KEYS.privateKeyPem, created: CREATED });
    const { generateSigningKeyPair } = await import('../src/index.js');
    expect(() => verifyBundle(built.bytes, generateSigningKeyPair().publicKeyPem)).toThrow(/bad signature/);
  });
});

describe('created and version', () => {
  it('defaults created to the newest mtime of the bundled files (ignoring other files), truncated to seconds', async () => {
    const checksDir = await fixtureChecks();
    const t = (iso: string) => new Date(iso);
    for (const rel of ['common', 'abuse/run-xmr', 'abuse/run-ssh', 'analytics/run-upt']) {
      await utimes(join(checksDir, rel), t('2023-01-01T00:00:00Z'), t('2023-01-01T00:00:00Z'));
    }
    await utimes(join(checksDir, 'abuse/run-ssh'), t('2023-03-04T05:06:07.890Z'), t('2023-03-04T05:06:07.890Z'));
    await utimes(join(checksDir, 'README.md'), t('2025-01-01T00:00:00Z'), t('2025-01-01T00:00:00Z'));
    const built = await buildBundle({ checksDir, privateKeyPem: KEYS.privateKeyPem, env: {} });
    expect(built.manifest.created).toBe('2023-03-04T05:06:07Z');
    expect(built.manifest.version).toMatch(/^20230304-[0-9a-f]{12}$/);
    expect(parseTar(built.bytes)[0]!.mtime).toBe(Date.parse('2023-03-04T05:06:07Z') / 1000);
  });

  it('uses SOURCE_DATE_EPOCH when no created is given, and created over SOURCE_DATE_EPOCH', async () => {
    const checksDir = await fixtureChecks();
    const fromEnv = await buildBundle({ checksDir, privateKeyPem: KEYS.privateKeyPem, env: { SOURCE_DATE_EPOCH: '1700000000' } });
    expect(fromEnv.manifest.created).toBe('2023-11-14T22:13:20Z');
    const explicit = await buildBundle({
      checksDir,
      privateKeyPem: KEYS.privateKeyPem,
      created: '2024-01-02T03:04:05+01:00',
      env: { SOURCE_DATE_EPOCH: '1700000000' },
    });
    expect(explicit.manifest.created).toBe('2024-01-02T02:04:05Z');
    await expect(buildBundle({ checksDir, privateKeyPem: KEYS.privateKeyPem, env: { SOURCE_DATE_EPOCH: 'yesterday' } })).rejects.toThrow(
      /SOURCE_DATE_EPOCH.*whole seconds/,
    );
  });

  it('uses an explicit version and rejects versions that are not safe S3 key parts', async () => {
    const checksDir = await fixtureChecks();
    const ok = await buildBundle({ checksDir, privateKeyPem: KEYS.privateKeyPem, created: CREATED, version: 'v1.2.3_rc-1' });
    expect(ok.manifest.version).toBe('v1.2.3_rc-1');
    for (const version of ['', 'a/b', '../x', '..', 'has space', 'x'.repeat(65), 'ünï']) {
      const error = await buildBundle({ checksDir, privateKeyPem: KEYS.privateKeyPem, created: CREATED, version }).catch((e: unknown) => e);
      expect(error, version).toBeInstanceOf(ConfigError);
      expect((error as Error).message).toMatch(/^\[gather\] \[checks-bundler\] Invalid bundle version .*A-Z a-z 0-9/);
    }
    expect(
      (await buildBundle({ checksDir, privateKeyPem: KEYS.privateKeyPem, created: CREATED, version: 'x'.repeat(64) })).manifest.version,
    ).toHaveLength(64);
  });

  it('rejects a created that is not an ISO-8601 date', async () => {
    const checksDir = await fixtureChecks();
    for (const created of ['yesterday', '2024-13-45T00:00:00Z', '1717243200', '1960-01-01T00:00:00Z']) {
      await expect(buildBundle({ checksDir, privateKeyPem: KEYS.privateKeyPem, created }), created).rejects.toBeInstanceOf(ConfigError);
    }
  });
});

describe('writeBundle', () => {
  it('writes the same bytes as buildBundle, mode 0644, and leaves no temp file', async () => {
    const checksDir = await fixtureChecks();
    const dir = await tempDir();
    const out = join(dir, 'check.tar');
    const written = await writeBundle({ checksDir, privateKeyPem: KEYS.privateKeyPem, created: CREATED, out });
    const built = await buildBundle({ checksDir, privateKeyPem: KEYS.privateKeyPem, created: CREATED });
    expect(await readFile(out)).toEqual(built.bytes);
    expect((await stat(out)).mode & 0o777).toBe(0o644);
    expect(written.path).toBe(out);
    expect(await readdir(dir)).toEqual(['check.tar']);
  });

  it('replaces an existing bundle', async () => {
    const dir = await tempDir();
    const out = join(dir, 'check.tar');
    await writeFile(out, 'old');
    const built = await writeBundle({ checksDir: await fixtureChecks(), privateKeyPem: KEYS.privateKeyPem, created: CREATED, out });
    expect(await readFile(out)).toEqual(built.bytes);
  });

  it('fails with a clear error when the output directory does not exist', async () => {
    const out = join(await tempDir(), 'missing', 'check.tar');
    await expect(
      writeBundle({ checksDir: await fixtureChecks(), privateKeyPem: KEYS.privateKeyPem, created: CREATED, out }),
    ).rejects.toThrow(/Cannot write .*check\.tar \(ENOENT\): its directory .* does not exist/);
  });
});
