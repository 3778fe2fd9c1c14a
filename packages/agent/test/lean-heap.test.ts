import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LEAN_HEAP_AFTER_CHECKS } from '../src/lean-heap.js';
import { AGENT_CLI, cleanEnv, makeBundleFile, tempDir } from './_helpers.js';

// A run with many checks keeps V8's heap lean (src/lean-heap.ts); a short run does not pay for loading
// node:v8. What the agent asks of V8 is seen by wrapping node:v8's setFlagsFromString in a preload.
async function v8FlagsOfRun(checks: number): Promise<string[]> {
  const scripts: Record<string, string> = {};
  for (let i = 0; i < checks; i++) scripts[`abuse/run-${String.fromCharCode(97 + i)}aa`] = `output n.${i} number ${i}`;
  const fx = await makeBundleFile(scripts);
  const dir = tempDir('gather-lean-heap-');
  try {
    const flagsFile = join(dir, 'flags.txt');
    const preload = join(dir, 'record-v8-flags.cjs');
    writeFileSync(
      preload,
      `const v8 = require('node:v8'); const set = v8.setFlagsFromString;
       v8.setFlagsFromString = (flags) => { require('node:fs').appendFileSync(${JSON.stringify(flagsFile)}, flags + '\\n'); set(flags); };`,
    );
    const args = ['run', '--bundle', fx.bundlePath, '--public-key', fx.publicKeyPath, '--out', join(dir, 'out.ndjson'), '--no-table'];
    const result = spawnSync(process.execPath, ['--require', preload, AGENT_CLI, ...args], {
      env: cleanEnv({ GATHER_STATE_DIR: join(dir, 'state') }),
      encoding: 'utf8',
    });
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    expect(readFileSync(join(dir, 'out.ndjson'), 'utf8').split('\n').filter(Boolean)).toHaveLength(checks + 1);
    return existsSync(flagsFile) ? readFileSync(flagsFile, 'utf8').split('\n').filter(Boolean) : [];
  } finally {
    rmSync(dir, { recursive: true, force: true });
    rmSync(fx.dir, { recursive: true, force: true });
  }
}

describe('a lean heap for runs with many checks', () => {
  it(`caps the heap's growth and compiles with the baseline compilers only after ${LEAN_HEAP_AFTER_CHECKS} checks`, async () => {
    expect(await v8FlagsOfRun(LEAN_HEAP_AFTER_CHECKS + 1)).toEqual(['--heap-growing-percent=30', '--no-maglev', '--no-turbofan']);
  });

  it('leaves a run of fewer checks as V8 starts it', async () => {
    expect(await v8FlagsOfRun(LEAN_HEAP_AFTER_CHECKS - 1)).toEqual([]);
  });
});
