/**
 * Keeps V8's heap close to what is live once a run has many checks. Each check leaves garbage that outlives
 * a young-generation collection (its output and documents, its child process's handles) and ends up in the
 * old generation, which V8 lets grow to ~3-4x the live size between full collections: 200 checks printing
 * 50 KB each peaked at 78-90 MB. With that growth capped at 30 % and hot code left to the baseline compilers
 * (TurboFan's compile jobs take memory on V8's threads too), 76-78 MB (tools/bench/runner), for a few more
 * full collections (~15 ms each here).
 *
 * Not for a run of a few checks: loading node:v8 costs ~5 ms, a tenth of what the agent adds to a 1-check
 * run (tools/bench/startup). And not on the bin's command line: there a V8 flag changes V8's flag hash and
 * Node's cached code for its own modules is rejected (see baseline-compiler.ts).
 */
import { compileWithBaselineOnly } from './baseline-compiler.js';

/** Checks done in a run before the heap is kept lean (for the rest of the process: the daemon's runs too). */
export const LEAN_HEAP_AFTER_CHECKS = 8;

let done = false;

export function keepHeapLean(): void {
  if (done) return;
  done = true;
  process.getBuiltinModule?.('node:v8')?.setFlagsFromString('--heap-growing-percent=30');
  compileWithBaselineOnly();
}
