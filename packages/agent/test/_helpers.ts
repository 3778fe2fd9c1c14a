import { spawn, type SpawnOptions } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildBundle, generateSigningKeyPair } from '@gather/checks-bundler';

export const AGENT_CLI = resolve(dirname(fileURLToPath(import.meta.url)), '../dist/cli.js');
if (!existsSync(AGENT_CLI)) throw new Error(`${AGENT_CLI} is missing: run "pnpm --filter @gather/agent build" (turbo runs it before test).`);

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

export async function makeBundleFile(scripts: Record<string, string>, common?: string): Promise<Fixture> {
  const keys = generateSigningKeyPair();
  const dir = tempDir();
  const built = await buildBundle({ checksDir: makeChecksDir(scripts, common), privateKeyPem: keys.privateKeyPem });
  const bundlePath = join(dir, 'check.tar');
  const publicKeyPath = join(dir, 'key.pub.pem');
  writeFileSync(bundlePath, built.bytes);
  writeFileSync(publicKeyPath, keys.publicKeyPem);
  return { dir, bundlePath, bundle: Buffer.from(built.bytes), publicKeyPath, privateKeyPem: keys.privateKeyPem };
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export function agent(args: string[], options: SpawnOptions & { onSpawn?: (pid: number) => void } = {}): Promise<CliResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [AGENT_CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...options });
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
