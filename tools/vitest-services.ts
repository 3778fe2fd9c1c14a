/**
 * Vitest globalSetup for integration tests that need the real Elasticsearch and S3 servers.
 *
 * - If GATHER_ES_URL and GATHER_S3_ENDPOINT (with GATHER_S3_ACCESS_KEY_ID, GATHER_S3_SECRET_ACCESS_KEY and
 *   GATHER_S3_BUCKET) are set, the tests use those (a user's own servers, or ones tools/test-all started)
 *   and this setup starts nothing.
 * - Otherwise it runs `tools/services start --lease <this pid>` for what is missing, puts the printed
 *   NAME=value lines into process.env (vitest 4 forks its test workers after globalSetup, so they inherit
 *   them) and also hands them to the tests through `project.provide('gatherServices', env)` (read with
 *   `inject('gatherServices')`, see tools/vitest-services-env.ts).
 * - The teardown runs `tools/services release <this pid>`: the services a setup started are stopped when the
 *   last vitest process holding a lease ends; services started by hand or by tools/test-all are left alone.
 *
 * If the services cannot be started the setup throws, so the run fails loudly (tests never skip).
 */
import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type {} from 'vitest';
import type { TestProject } from 'vitest/node';

export const SERVICE_ENV_KEYS = [
  'GATHER_ES_URL',
  'GATHER_S3_ENDPOINT',
  'GATHER_S3_ACCESS_KEY_ID',
  'GATHER_S3_SECRET_ACCESS_KEY',
  'GATHER_S3_BUCKET',
] as const;

export type ServicesEnv = Record<(typeof SERVICE_ENV_KEYS)[number], string>;

declare module 'vitest' {
  export interface ProvidedContext {
    gatherServices: ServicesEnv;
  }
}

const SERVICES_SCRIPT = join(dirname(fileURLToPath(import.meta.url)), 'services');
const S3_KEYS = ['GATHER_S3_ACCESS_KEY_ID', 'GATHER_S3_SECRET_ACCESS_KEY', 'GATHER_S3_BUCKET'] as const;

function runServices(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('bash', [SERVICES_SCRIPT, ...args], { maxBuffer: 16 * 1024 * 1024, timeout: 15 * 60_000 }, (error, stdout, stderr) => {
      if (stderr) process.stderr.write(stderr);
      if (error) {
        reject(new Error(`tools/services ${args.join(' ')} failed: ${error.message}\n${stderr}`));
      } else {
        resolve(stdout);
      }
    });
  });
}

function parseEnvLines(stdout: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of stdout.split('\n')) {
    const match = /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(line.trim());
    if (match?.[1] !== undefined && match[2] !== undefined) env[match[1]] = match[2];
  }
  return env;
}

export default async function setup(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  const need: string[] = [];
  if (!process.env.GATHER_ES_URL) need.push('elasticsearch');
  if (!process.env.GATHER_S3_ENDPOINT) {
    need.push('s3');
  } else {
    const missing = S3_KEYS.filter((key) => !process.env[key]);
    if (missing.length > 0) {
      throw new Error(`GATHER_S3_ENDPOINT is set but ${missing.join(', ')} is not; set all of them or none`);
    }
  }

  let started = false;
  if (need.length > 0) {
    // one service by name, or both when both are missing
    const args = need.length === 1 ? ['start', '--lease', String(process.pid), need[0]!] : ['start', '--lease', String(process.pid)];
    const printed = parseEnvLines(await runServices(args));
    started = true;
    for (const [key, value] of Object.entries(printed)) process.env[key] = value;
  }

  const env = {} as ServicesEnv;
  for (const key of SERVICE_ENV_KEYS) {
    const value = process.env[key];
    if (!value) throw new Error(`${key} is not set after starting the services`);
    env[key] = value;
  }
  project.provide('gatherServices', env);

  if (!started) return undefined;
  return async () => {
    await runServices(['release', String(process.pid)]);
  };
}
