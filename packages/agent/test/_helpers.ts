import { execFileSync, spawn, type SpawnOptions } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildBundle, generateSigningKeyPair, type BuildOptions } from '@gather/checks-bundler';

export const AGENT_CLI = resolve(dirname(fileURLToPath(import.meta.url)), '../dist/cli.js');
if (!existsSync(AGENT_CLI))
  throw new Error(`${AGENT_CLI} is missing: run "pnpm --filter @gather/agent build" (turbo runs it before test).`);

export const tempDir = (prefix = 'gather-agent-test-') => mkdtempSync(join(tmpdir(), prefix));

export const COMMON = `output() { printf '{"name":"%s","type":"%s","value":%s}\\n' "$1" "$2" "$3"; }\n`;

/** A checks/ dir with the given `category/run-xyz` scripts (the shebang is added). */
export function makeChecksDir(scripts: Record<string, string>, common = COMMON): string {
  const dir = tempDir('gather-checks-');
  mkdirSync(join(dir, 'abuse'));
  mkdirSync(join(dir, 'analytics'));
  writeFileSync(join(dir, 'common'), common);
  for (const [path, body] of Object.entries(scripts)) writeFileSync(join(dir, path), `#!/usr/bin/env bash\n${body}\n`);
  return dir;
}

export interface Fixture {
  dir: string;
  bundlePath: string;
  bundle: Buffer;
  publicKeyPath: string;
  privateKeyPem: string;
}

export async function makeBundleFile(
  scripts: Record<string, string>,
  common?: string,
  build: Partial<Pick<BuildOptions, 'sequence' | 'expiresInSec' | 'created' | 'version'>> & {
    privateKeyPem?: string;
    publicKeyPem?: string;
  } = {},
): Promise<Fixture> {
  const { privateKeyPem, publicKeyPem, ...options } = build;
  const keys = privateKeyPem && publicKeyPem ? { privateKeyPem, publicKeyPem } : generateSigningKeyPair();
  const dir = tempDir();
  const built = await buildBundle({ checksDir: makeChecksDir(scripts, common), privateKeyPem: keys.privateKeyPem, ...options });
  const bundlePath = join(dir, 'check.tar');
  const publicKeyPath = join(dir, 'key.pub.pem');
  writeFileSync(bundlePath, built.bytes);
  writeFileSync(publicKeyPath, keys.publicKeyPem);
  return { dir, bundlePath, bundle: Buffer.from(built.bytes), publicKeyPath, privateKeyPem: keys.privateKeyPem };
}

/**
 * The environment of an agent under test: this process's, without GATHER_* and AWS_* settings (the
 * integration setup exports the services' GATHER_ES_URL / GATHER_S3_* into every test worker).
 */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) if (!/^(GATHER|AWS)_/.test(name)) env[name] = value;
  return { ...env, ...extra };
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export function agent(args: string[], options: SpawnOptions & { onSpawn?: (pid: number) => void } = {}): Promise<CliResult> {
  return new Promise((resolvePromise, reject) => {
    // Each call gets its own state dir (locks, bundle cache) unless the test shares one on purpose.
    const env = { ...(options.env ?? cleanEnv()) };
    env.GATHER_STATE_DIR ??= tempDir('gather-agent-state-');
    const child = spawn(process.execPath, [AGENT_CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...options, env });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (chunk) => (stdout += chunk));
    child.stderr!.on('data', (chunk) => (stderr += chunk));
    child.on('error', reject);
    if (child.pid) options.onSpawn?.(child.pid);
    child.on('close', (code, signal) => resolvePromise({ code, signal, stdout, stderr }));
  });
}

export const ndjson = (text: string): Array<Record<string, unknown>> =>
  text
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Record<string, unknown>);

/** The monorepo's root. */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

/**
 * Installable tarballs of our packages in `dir` (`gather-<name>-0.1.0.tgz`), made the documented way: `pnpm pack`
 * rewrites the `workspace:^` ranges between our packages to real versions (`npm pack` would keep them).
 */
export function packPackages(dir: string, names: readonly string[]): void {
  for (const name of names)
    execFileSync('pnpm', ['pack', '--pack-destination', dir], { cwd: join(REPO_ROOT, 'packages', name), stdio: 'pipe' });
}
