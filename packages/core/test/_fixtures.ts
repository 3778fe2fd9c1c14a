// Core's own test helpers; the bundle builders are shared with the other packages' tests through
// @gather/core/testing (src/testing).
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BundledCheck } from '../src/types.js';

export { makeBundle, makeKeys, runnerFor, tar, type BundleSpec, type Keys, type TarEntry } from '../src/testing/bundles.js';

export const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

export function tempDir(prefix = 'gather-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function writeTemp(name: string, data: Buffer | string): string {
  const path = join(tempDir(), name);
  writeFileSync(path, data);
  return path;
}

export const check = (id: string, script: string, category: BundledCheck['category'] = 'abuse', timeoutSec?: number): BundledCheck => ({
  id,
  category,
  script,
  ...(timeoutSec ? { timeoutSec } : {}),
});

/** Pids of live processes (zombies are dead already) whose command line contains `marker`. */
export function processesWith(marker: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) continue;
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(marker)) pids.push(Number(entry));
    } catch {
      // The process ended while we looked.
    }
  }
  return pids;
}
