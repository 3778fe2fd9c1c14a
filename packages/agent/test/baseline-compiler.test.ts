import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';

// The agent turns V8's optimizing compilers off at run time (src/baseline-compiler.ts), not with --max-opt=1
// on its command line. Whether a hot function got optimized, V8 says itself (%GetOptimizationStatus).
const MODULE = pathToFileURL(resolve(__dirname, '../dist/baseline-compiler.js')).href;
// Bits of V8's OptimizationStatus: optimized, by Maglev, by TurboFan.
const OPTIMIZED = (1 << 4) | (1 << 5) | (1 << 6);

function statusOfHotFunction(turnedOff: boolean): number {
  const script = `
    ${turnedOff ? `const { compileWithBaselineOnly } = await import(${JSON.stringify(MODULE)}); compileWithBaselineOnly();` : ''}
    function hot(x) { let s = 0; for (let i = 0; i < 100; i++) s += (x * i) % 7; return s; }
    for (let i = 0; i < 100000; i++) hot(i);
    process.stdout.write(String(%GetOptimizationStatus(hot)));`;
  return Number(execFileSync(process.execPath, ['--allow-natives-syntax', '--input-type=module', '-e', script], { encoding: 'utf8' }));
}

describe('compileWithBaselineOnly', () => {
  it('leaves a hot function unoptimized, which V8 otherwise optimizes', () => {
    expect(statusOfHotFunction(false) & OPTIMIZED).not.toBe(0);
    expect(statusOfHotFunction(true) & OPTIMIZED).toBe(0);
  });
});
