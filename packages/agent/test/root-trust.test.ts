// Root trusts only root: run as root (CI is), these stage files owned by nobody (uid 65534) or writable by
// others, and symbolic links planted where the agent writes.
import { chmodSync, chownSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '@gather/core';
import { loadConfig } from '../src/config.js';
import { agent, cleanEnv, makeBundleFile, type Fixture } from './_helpers.js';

const NOBODY = 65534;
const dirs: string[] = [];
/** A root-owned 0700 dir inside /tmp (sticky, world-writable): trusted. */
const rootDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'gather-root-trust-'));
  dirs.push(dir);
  return dir;
};
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

let fx: Fixture;
beforeAll(async () => {
  expect(process.geteuid?.(), 'these tests need root (CI runs them as root)').toBe(0);
  fx = await makeBundleFile({ 'abuse/run-abc': 'output a number 1' });
});
afterAll(() => rmSync(fx.dir, { recursive: true, force: true }));

/** The agent's environment: state and spool in a trusted dir of this test. */
const env = (extra: Record<string, string> = {}) => {
  const base = rootDir();
  return cleanEnv({ GATHER_STATE_DIR: join(base, 'state'), GATHER_SPOOL_DIR: join(base, 'spool'), ...extra });
};
const run = (args: string[], extra: Record<string, string> = {}) =>
  agent(['run', '--bundle', fx.bundlePath, '--public-key', fx.publicKeyPath, ...args], { env: env(extra) });

describe('running as root, the agent refuses paths others own or can write (exit 2, path and fix named)', () => {
  it('a configuration file owned by nobody', async () => {
    const configFile = join(rootDir(), 'agent.json');
    writeFileSync(configFile, JSON.stringify({ bundle: fx.bundlePath, publicKey: fx.publicKeyPath }));
    chownSync(configFile, NOBODY, NOBODY);
    const result = await agent(['run', '--config', configFile], { env: env() });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(
      `config: root will not trust the configuration file ${configFile}: ${configFile} is owned by uid ${NOBODY}. Fix: chown root:root ${configFile}`,
    );
    expect(result.stdout).toBe('');
  });

  it('a public key in a group-writable directory (a parent counts: whoever writes it can swap the key)', async () => {
    const dir = join(rootDir(), 'keys');
    mkdirSync(dir);
    chmodSync(dir, 0o775);
    const key = join(dir, 'signing.pub.pem');
    copyFileSync(fx.publicKeyPath, key);
    const result = await agent(['run', '--bundle', fx.bundlePath, '--public-key', key], { env: env() });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(
      `publicKey: root will not trust the public key ${key}: ${dir} is writable by its group (mode 0775). Fix: chmod go-w ${dir}`,
    );
  });

  it('a secret file owned by nobody and writable by others, a spool dir owned by nobody, a state dir others can write', async () => {
    const base = rootDir();
    const secret = join(base, 'es-api-key');
    writeFileSync(secret, 'c2VjcmV0', { mode: 0o666 });
    chmodSync(secret, 0o666);
    chownSync(secret, NOBODY, NOBODY);
    const spool = join(base, 'spool');
    mkdirSync(spool);
    chownSync(spool, NOBODY, NOBODY);
    const state = join(base, 'state');
    mkdirSync(state);
    chmodSync(state, 0o777);
    const result = await agent(
      [
        'run',
        '--bundle',
        fx.bundlePath,
        '--public-key',
        fx.publicKeyPath,
        '--exporter',
        'elasticsearch',
        '--es-url',
        'http://127.0.0.1:9',
        '--es-api-key-file',
        secret,
      ],
      { env: cleanEnv({ GATHER_STATE_DIR: state, GATHER_SPOOL_DIR: spool }) },
    );
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(
      `elasticsearch.apiKeyFile: root will not trust the secret file ${secret}: ${secret} is owned by uid ${NOBODY}, writable by its group and others (mode 0666). Fix: chown root:root ${secret} && chmod go-w ${secret}`,
    );
    expect(result.stderr).toContain(
      `spoolDir: root will not trust the spool directory ${spool}: ${spool} is owned by uid ${NOBODY}. Fix: chown root:root ${spool}`,
    );
    expect(result.stderr).toContain(
      `stateDir: root will not trust the state directory ${state}: ${state} is writable by its group and others (mode 0777). Fix: chmod go-w ${state}`,
    );
  });

  it('a root-owned symbolic link to a file nobody owns: the path it resolves to counts', async () => {
    const base = rootDir();
    const real = join(base, 'real.pem');
    copyFileSync(fx.publicKeyPath, real);
    chownSync(real, NOBODY, NOBODY);
    const link = join(base, 'link.pem');
    symlinkSync(real, link);
    const result = await agent(['run', '--bundle', fx.bundlePath, '--public-key', link], { env: env() });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`publicKey: root will not trust the public key ${link}: ${real} is owned by uid ${NOBODY}`);
  });

  it('accepts root-owned files in a root-owned directory inside /tmp: a sticky world-writable ancestor does not count', async () => {
    const dir = rootDir();
    const key = join(dir, 'signing.pub.pem');
    copyFileSync(fx.publicKeyPath, key);
    const configFile = join(dir, 'agent.json');
    writeFileSync(configFile, JSON.stringify({ bundle: fx.bundlePath, publicKey: key }));
    const result = await agent(['run', '--config', configFile], { env: env() });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/"name":"a"/);
  });

  it('checks nothing when not root: a user trusts their own files (pnpm demo)', () => {
    const dir = rootDir();
    const key = join(dir, 'signing.pub.pem');
    copyFileSync(fx.publicKeyPath, key);
    chownSync(key, NOBODY, NOBODY);
    chmodSync(dir, 0o777);
    const flags = { bundle: fx.bundlePath, 'public-key': key, 'state-dir': dir };
    expect(loadConfig({ env: {}, flags, uid: 1000, home: dir, euid: 1000 }).publicKeyPath).toBe(key);
    expect(() => loadConfig({ env: {}, flags, uid: 0, euid: 0 })).toThrow(ConfigError);
  });
});

describe('a symbolic link planted in the state dir never makes root overwrite anything', () => {
  it('links at the run lock and its takeover mutex: the run goes on, the victim is untouched', async () => {
    const base = rootDir();
    const state = join(base, 'state');
    mkdirSync(state, { mode: 0o700 });
    const victim = join(base, 'victim');
    writeFileSync(victim, 'precious\n');
    for (const name of ['agent.lock', 'agent.lock.break']) symlinkSync(victim, join(state, name));
    const result = await agent(['run', '--bundle', fx.bundlePath, '--public-key', fx.publicKeyPath, '--lock-wait', '5'], {
      env: cleanEnv({ GATHER_STATE_DIR: state, GATHER_SPOOL_DIR: join(base, 'spool') }),
    });
    expect(result.code).toBe(0);
    expect(readFileSync(victim, 'utf8')).toBe('precious\n');
  });
});
