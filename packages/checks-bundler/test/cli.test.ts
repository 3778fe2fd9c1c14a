import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { verifyBundle } from '@gather/core';
import { buildBundle } from '../src/index.js';
import { KEYS, fixtureChecks, sha256, tempDir, writeTree } from './_helpers.js';

const PACKAGE = join(dirname(fileURLToPath(import.meta.url)), '..');
const CLI = join(PACKAGE, 'dist', 'cli.js');

beforeAll(() => {
  if (!existsSync(CLI)) {
    throw new Error(`${CLI} is missing: run "pnpm --filter @gather/checks-bundler build" first (turbo builds before testing).`);
  }
  const built = statSync(CLI).mtimeMs;
  const stale = readdirSync(join(PACKAGE, 'src')).filter((f) => statSync(join(PACKAGE, 'src', f)).mtimeMs > built);
  if (stale.length > 0) {
    throw new Error(`dist/ is older than src/${stale.join(', src/')}: run "pnpm --filter @gather/checks-bundler build" again.`);
  }
});

function run(args: string[], env: Record<string, string> = {}): { code: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [CLI, ...args], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '', ...env },
    timeout: 30_000,
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

async function keyFile(): Promise<string> {
  const path = join(await tempDir(), 'key.pem');
  await writeFile(path, KEYS.privateKeyPem, { mode: 0o600 });
  return path;
}

describe('gather-bundle help and usage', () => {
  it('in a clone not yet built, the bin says to run pnpm build: exit 1, no resolver stack trace', async () => {
    const clone = await tempDir('gather-bundle-unbuilt-'); // the bin where the package has no dist/ yet
    mkdirSync(join(clone, 'bin'));
    copyFileSync(join(PACKAGE, 'bin', 'gather-bundle.js'), join(clone, 'bin', 'gather-bundle.js'));
    const result = spawnSync(process.execPath, [join(clone, 'bin', 'gather-bundle.js'), '--help'], { encoding: 'utf8' });
    expect(result.stderr).toBe(
      '[gather] [checks-bundler] gather-bundle is not built yet: run "pnpm build" at the root of the clone, then try again.\n',
    );
    expect(result.status).toBe(1);
  });

  it.each([[['--help']], [['-h']], [['help']]])('%j prints the global usage to stdout, exit 0', (args) => {
    const { code, stdout, stderr } = run(args);
    expect(code).toBe(0);
    expect(stdout).toMatch(/^Usage: gather-bundle <command> \[options\]/);
    expect(stdout).toMatch(/build .*\n.*keygen .*\n.*inspect /);
    expect(stdout).toContain('Exit codes: 0 success, 1 failure, 2 usage error or invalid checks.');
    expect(stderr).toBe('');
  });

  it.each(['build', 'keygen', 'inspect'])('%s: "<command> --help" and "help <command>" print its usage, exit 0', (command) => {
    for (const args of [
      [command, '--help'],
      ['help', command],
    ]) {
      const { code, stdout } = run(args);
      expect(code).toBe(0);
      expect(stdout).toMatch(new RegExp(`^Usage: gather-bundle ${command} `));
    }
  });

  it.each(['publish', 'rollback'])('%s comes from @gather/fetcher-s3: its usage, exit 0; a bad flag, exit 2', (command) => {
    for (const args of [
      [command, '--help'],
      ['help', command],
    ]) {
      const { code, stdout } = run(args);
      expect(code).toBe(0);
      expect(stdout).toMatch(new RegExp(`^Usage: gather-bundle ${command} `));
    }
    const bad = run([command, '--no-such-flag']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/Unknown option '--no-such-flag'/);
  });

  it('--version prints the package version', async () => {
    const pkg = JSON.parse(await readFile(join(PACKAGE, 'package.json'), 'utf8')) as { version: string };
    expect(run(['--version'])).toMatchObject({ code: 0, stdout: `${pkg.version}\n` });
  });

  it('no command, an unknown command, an unknown flag, a stray argument or a missing option print the problem and a pointer to --help to stderr, exit 2', () => {
    const cases: Array<[string[], RegExp]> = [
      [[], /^gather-bundle: Missing command\.\nRun "gather-bundle --help" for the options\.\n$/],
      [['frobnicate'], /Unknown command "frobnicate"\.\nRun "gather-bundle --help"/],
      [['--checks', 'x'], /Unknown option "--checks"; put the command first/],
      [['build', '--nope'], /build: Unknown option '--nope'[\s\S]*\nRun "gather-bundle build --help" for the options\.\n$/],
      [['build', 'extra'], /build: Unexpected argument 'extra'[\s\S]*Run "gather-bundle build --help"/],
      [['build', '--checks'], /build: Option '--checks <value>' argument missing[\s\S]*Run "gather-bundle build --help"/],
      [['build', '--checks', 'c', '--out', 'o'], /Missing required option --key\.\nRun "gather-bundle build --help"/],
      [['keygen', '--out-private', 'a.pem'], /Missing required option --out-public/],
      [['keygen', '--out-private', 'a.pem', '--out-public', './a.pem'], /must be different files/],
      [
        ['build', '--checks', 'c', '--out', 'o', '--key', 'k', '--bundle-version', 'a/b'],
        /Invalid --bundle-version "a\/b"[\s\S]*Run "gather-bundle build --help"/,
      ],
      [
        ['build', '--checks', 'c', '--out', 'o', '--key', 'k', '--created', 'tomorrow'],
        /Invalid --created "tomorrow"[\s\S]*Run "gather-bundle build --help"/,
      ],
    ];
    for (const [args, pattern] of cases) {
      const { code, stdout, stderr } = run(args);
      expect(code, args.join(' ')).toBe(2);
      expect(stdout, args.join(' ')).toBe('');
      expect(stderr, args.join(' ')).toMatch(pattern);
    }
  });
});

describe('gather-bundle build', () => {
  it('writes the bundle and prints one summary line (path, version, sha256, counts) to stderr, exit 0', async () => {
    const checksDir = await fixtureChecks();
    const out = join(await tempDir(), 'check.tar');
    const { code, stdout, stderr } = run([
      'build',
      '--checks',
      checksDir,
      '--out',
      out,
      '--key',
      await keyFile(),
      '--created',
      '2024-06-01T00:00:00Z',
    ]);
    expect(code).toBe(0);
    expect(stdout).toBe('');
    const bytes = await readFile(out);
    const verified = verifyBundle(bytes, KEYS.publicKeyPem);
    expect(stderr.split('\n')).toEqual([expect.any(String), '']);
    expect(stderr).toContain(
      `Built ${out}: version ${verified.manifest.version}, sequence ${verified.manifest.sequence}, sha256 ${sha256(bytes)}, 2 abuse + 1 analytics checks, `,
    );
    expect(stderr).toMatch(/^\[gather\] \[checks-bundler\] Built .* KiB in \d+ ms\.\n$/);
    // The CLI and the API produce the same bytes.
    const api = await buildBundle({ checksDir, privateKeyPem: KEYS.privateKeyPem, created: '2024-06-01T00:00:00Z' });
    expect(bytes.equals(api.bytes)).toBe(true);
  });

  it('honours --bundle-version and SOURCE_DATE_EPOCH', async () => {
    const out = join(await tempDir(), 'check.tar');
    const { code } = run(
      ['build', '--checks', await fixtureChecks(), '--out', out, '--key', await keyFile(), '--bundle-version', 'release-7'],
      {
        SOURCE_DATE_EPOCH: '1717243200',
      },
    );
    expect(code).toBe(0);
    const { manifest } = verifyBundle(await readFile(out), KEYS.publicKeyPem);
    expect(manifest).toMatchObject({ version: 'release-7', created: '2024-06-01T12:00:00Z' });
  });

  it('invalid checks: lists every problem, exit 2, and leaves no output nor temp file', async () => {
    const checksDir = await writeTree(join(await tempDir(), 'checks'), {
      'abuse/run-toolong': '#!/bin/bash\n',
      'analytics/run-abc': '#!/bin/sh\n',
      'analytics/run-emp': '',
    });
    const outDir = await tempDir();
    const { code, stdout, stderr } = run(['build', '--checks', checksDir, '--out', join(outDir, 'check.tar'), '--key', await keyFile()]);
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr).toMatch(/has 4 problems:\n/);
    expect(stderr).toContain('  - common: is missing');
    expect(stderr).toContain('  - abuse/run-toolong: the check id "toolong" must be exactly 3 lowercase letters');
    expect(stderr).toContain('  - analytics/run-abc: checks run with bash; the shebang must be');
    expect(stderr).toContain('  - analytics/run-emp: is empty');
    expect(stderr).not.toContain('Usage:');
    expect(await readdir(outDir)).toEqual([]);
  });

  it('a key that is not ed25519: names the file, says how to make one, exit 1, no output', async () => {
    const keyPath = join(await tempDir(), 'rsa.pem');
    const { generateKeyPairSync } = await import('node:crypto');
    await writeFile(keyPath, generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs1', format: 'pem' }));
    const outDir = await tempDir();
    const { code, stderr } = run(['build', '--checks', await fixtureChecks(), '--out', join(outDir, 'check.tar'), '--key', keyPath]);
    expect(code).toBe(1);
    expect(stderr).toContain(`Cannot use the key file ${keyPath} to sign: it is an rsa key`);
    expect(stderr).toContain('gather-bundle keygen');
    expect(await readdir(outDir)).toEqual([]);
  });

  it('an output directory that does not exist: exit 1 with the reason', async () => {
    const out = join(await tempDir(), 'no', 'such', 'dir', 'check.tar');
    const { code, stderr } = run(['build', '--checks', await fixtureChecks(), '--out', out, '--key', await keyFile()]);
    expect(code).toBe(1);
    expect(stderr).toMatch(/Cannot write .* \(ENOENT\): its directory .* does not exist/);
  });
});

describe('gather-bundle keygen', () => {
  it('writes a 0600 PKCS#8 private key and a public key that verify each other; refuses to overwrite without --force', async () => {
    const dir = await tempDir();
    const priv = join(dir, 'key.pem');
    const pub = join(dir, 'key.pub.pem');
    const first = run(['keygen', '--out-private', priv, '--out-public', pub]);
    expect(first.code).toBe(0);
    expect((await stat(priv)).mode & 0o777).toBe(0o600);
    expect(await readFile(priv, 'utf8')).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    expect(await readFile(pub, 'utf8')).toMatch(/^-----BEGIN PUBLIC KEY-----/);
    expect(first.stderr).toContain('mode 0600');

    const before = await readFile(priv, 'utf8');
    const again = run(['keygen', '--out-private', priv, '--out-public', pub]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/key\.pem already exists; not overwriting a key\. Pass --force/);
    expect(await readFile(priv, 'utf8')).toBe(before);

    const forced = run(['keygen', '--out-private', priv, '--out-public', pub, '--force']);
    expect(forced.code).toBe(0);
    expect(await readFile(priv, 'utf8')).not.toBe(before);
    expect((await stat(priv)).mode & 0o777).toBe(0o600);
    expect((await readdir(dir)).sort()).toEqual(['key.pem', 'key.pub.pem']);

    // The new pair works end to end through the CLI.
    const out = join(dir, 'check.tar');
    expect(run(['build', '--checks', await fixtureChecks(), '--out', out, '--key', priv]).code).toBe(0);
    expect(() => verifyBundle(readFileSync(out), readFileSync(pub, 'utf8'))).not.toThrow();
  });
});

describe('gather-bundle inspect', () => {
  it('prints the manifest; with --public-key verifies it like the agent (exit 0), or refuses it (exit 1)', async () => {
    const dir = await tempDir();
    const out = join(dir, 'check.tar');
    expect(
      run(['build', '--checks', await fixtureChecks(), '--out', out, '--key', await keyFile(), '--created', '2024-06-01T00:00:00Z']).code,
    ).toBe(0);
    const manifest = verifyBundle(await readFile(out), KEYS.publicKeyPem).manifest;

    const plain = run(['inspect', '--bundle', out]);
    expect(plain.code).toBe(0);
    expect(JSON.parse(plain.stdout)).toEqual(manifest);
    expect(plain.stderr).toContain('signature NOT verified');

    const pub = join(dir, 'pub.pem');
    await writeFile(pub, KEYS.publicKeyPem);
    const good = run(['inspect', '--bundle', out, '--public-key', pub]);
    expect(good.code).toBe(0);
    expect(JSON.parse(good.stdout)).toEqual(manifest);
    expect(good.stderr).toContain('signature valid');
    expect(good.stderr).toContain('runner.js decodes 3 checks');

    const otherPub = join(dir, 'other.pem');
    const { generateSigningKeyPair } = await import('../src/index.js');
    await writeFile(otherPub, generateSigningKeyPair().publicKeyPem);
    const bad = run(['inspect', '--bundle', out, '--public-key', otherPub]);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toBe('');
    expect(bad.stderr).toMatch(/bad signature/);

    const notBundle = join(dir, 'x.tar');
    await writeFile(notBundle, 'hello');
    expect(run(['inspect', '--bundle', notBundle])).toMatchObject({ code: 1, stderr: expect.stringMatching(/is not a gather bundle/) });
  });

  it('refuses a --public-key that is a private key or not ed25519 with exit 2, before reading the bundle', async () => {
    const dir = await tempDir();
    const out = join(dir, 'check.tar');
    await writeFile(out, 'not read');
    const rsa = join(dir, 'rsa.pub.pem');
    const { generateKeyPairSync } = await import('node:crypto');
    await writeFile(rsa, generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' }));
    const privateAsPublic = run(['inspect', '--bundle', out, '--public-key', await keyFile()]);
    expect(privateAsPublic.code).toBe(2);
    expect(privateAsPublic.stderr).toMatch(/this is a private key; ship only the public half/);
    const notEd25519 = run(['inspect', '--bundle', out, '--public-key', rsa]);
    expect(notEd25519.code).toBe(2);
    expect(notEd25519.stderr).toMatch(/rsa\.pub\.pem is not an ed25519 public key \(found an RSA public key\)/);
  });
});
