import { createHash, generateKeyPairSync } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import vm from 'node:vm';
import { afterAll, expect } from 'vitest';
import type { BundlePayload } from '@gather/core';

const dirs: string[] = [];
afterAll(async () => {
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

/** A fresh temp directory, removed after the test file. */
export async function tempDir(prefix = 'gather-bundler-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}

/** Writes `files` (relative path -> content) under `root`, creating directories. */
export async function writeTree(root: string, files: Record<string, string | Uint8Array>): Promise<string> {
  for (const [rel, content] of Object.entries(files)) {
    const path = join(root, rel);
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, content);
  }
  return root;
}

/** A realistic checks/ directory with distinctive words (so leaks are easy to grep) and non-ASCII text. */
export const FIXTURE = {
  common: [
    '# shared helpers for every check',
    'emit_result() { printf \'{"name":"%s","type":"%s","value":%s}\\n\' "$1" "$2" "$3"; }',
    'quarantine_lookup() { grep -qs "$1" /var/lib/zebrafinch/quarantine.lst; }',
    'GREETING="héllo wörld ✓ 日本"',
    '',
  ].join('\n'),
  'abuse/run-xmr': [
    '#!/usr/bin/env bash',
    '# gather: timeout=45',
    '# Looks for cryptocurrency miners',
    'if pgrep -f xmrig >/dev/null || grep -rqs "stratum+tcp://" /etc/cron.d; then',
    '  emit_result miner_found boolean true',
    'else',
    '  emit_result miner_found boolean false',
    'fi',
    '',
  ].join('\n'),
  'abuse/run-ssh': [
    '#!/bin/bash -eu',
    'count=$(wc -l < /root/.ssh/authorized_keys 2>/dev/null || echo 0)',
    'emit_result authorized_keys_count number "$count"',
    'echo \'{"name":"emoji","type":"string","value":"🐧 penguin"}\'',
    '',
  ].join('\n'),
  'analytics/run-upt': [
    '#!/usr/bin/bash',
    '# collect uptime in seconds',
    '',
    '',
    '',
    '',
    '',
    '',
    '',
    '# gather: timeout=3600',
    'awk \'{print int($1)}\' /proc/uptime | xargs -I{} printf \'{"name":"uptime_seconds","type":"number","value":%s}\\n\' {}',
    '',
  ].join('\n'),
  // Not checks: ignored by the bundler.
  'README.md': '# Checks\nDocumentation that must not be bundled: platypus.\n',
  'abuse/README.md': 'notes about abuse checks: wombat\n',
  'analytics/runner-notes.txt': 'not a run- file: kookaburra\n',
} as const;

/** The payload the runner must return for FIXTURE (sorted by category, then id). */
export const FIXTURE_PAYLOAD: BundlePayload = {
  prelude: FIXTURE.common,
  checks: [
    { id: 'ssh', category: 'abuse', script: FIXTURE['abuse/run-ssh'] },
    { id: 'xmr', category: 'abuse', script: FIXTURE['abuse/run-xmr'], timeoutSec: 45 },
    { id: 'upt', category: 'analytics', script: FIXTURE['analytics/run-upt'], timeoutSec: 3600 },
  ],
};

export async function fixtureChecks(files: Record<string, string | Uint8Array> = FIXTURE): Promise<string> {
  const root = await tempDir();
  return writeTree(join(root, 'checks'), files);
}

export const KEYS = (() => {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519', {
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
  return { privateKeyPem: privateKey, publicKeyPem: publicKey };
})();

export function sha256(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** One ustar header, parsed here independently of the package's own reader. */
export interface RawMember {
  name: string;
  mode: string;
  uid: string;
  gid: string;
  size: number;
  mtime: number;
  typeflag: string;
  magic: string;
  version: string;
  uname: string;
  gname: string;
  prefix: string;
  linkname: string;
  data: Buffer;
}

function cstr(block: Buffer, start: number, length: number): string {
  const raw = block.subarray(start, start + length);
  const end = raw.indexOf(0);
  return raw.subarray(0, end === -1 ? length : end).toString('latin1');
}

/** Splits a tar into members; throws unless it ends with exactly two zero blocks and nothing after. */
export function parseTar(bytes: Buffer): RawMember[] {
  const members: RawMember[] = [];
  let offset = 0;
  for (;;) {
    const block = bytes.subarray(offset, offset + 512);
    if (block.length < 512) throw new Error('truncated tar');
    if (block.every((b) => b === 0)) {
      if (bytes.length !== offset + 1024 || !bytes.subarray(offset).every((b) => b === 0)) {
        throw new Error(`expected exactly two zero blocks at ${offset}, archive is ${bytes.length} bytes`);
      }
      return members;
    }
    const size = Number.parseInt(cstr(block, 124, 12), 8);
    members.push({
      name: cstr(block, 0, 100),
      mode: cstr(block, 100, 8),
      uid: cstr(block, 108, 8),
      gid: cstr(block, 116, 8),
      size,
      mtime: Number.parseInt(cstr(block, 136, 12), 8),
      typeflag: cstr(block, 156, 1),
      linkname: cstr(block, 157, 100),
      magic: block.subarray(257, 263).toString('latin1'),
      version: block.subarray(263, 265).toString('latin1'),
      uname: cstr(block, 265, 32),
      gname: cstr(block, 297, 32),
      prefix: cstr(block, 345, 155),
      data: Buffer.from(bytes.subarray(offset + 512, offset + 512 + size)),
    });
    offset += 512 + Math.ceil(size / 512) * 512;
  }
}

export function members(bytes: Buffer): Record<string, Buffer> {
  return Object.fromEntries(parseTar(bytes).map((m) => [m.name, m.data]));
}

/** Evaluates runner.js the way the brief requires: a fresh context whose global is an empty object. */
export function evalRunner(runner: Buffer | string): BundlePayload {
  const sandbox: Record<string, unknown> = {};
  vm.runInNewContext(runner.toString(), sandbox, { timeout: 10_000 });
  const bundle = sandbox.gatherBundle as { load(): BundlePayload } | undefined;
  if (!bundle || typeof bundle.load !== 'function') throw new Error('runner did not set globalThis.gatherBundle.load');
  // It defines nothing else on the global object.
  expect(Object.keys(sandbox)).toEqual(['gatherBundle']);
  // Round-trip through JSON: the objects come from another realm (other Object.prototype).
  return JSON.parse(JSON.stringify(bundle.load())) as BundlePayload;
}
