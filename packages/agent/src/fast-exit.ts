/**
 * Ends the process with `code` once its 'exit' listeners have run (the host lock's removal among them), without
 * Node's teardown: freeing the heap, joining V8's and libuv's threads, at-exit handlers. That teardown took
 * 17 ms of a 1-check run's end here, 11 ms with libc's _exit() called through node:ffi (tools/bench/startup).
 * V8's compile cache, which Node writes during the teardown, is flushed first. Where Node has no FFI (Node 22
 * and 24), or the teardown writes something asked for (coverage, CPU or heap profiles), process.exit() as usual.
 * Callers flush stdout and stderr first: nothing written after this is delivered.
 */
import { loadFfi } from '@gather/core';

export function exitProcess(code: number): never {
  const exitNow = teardownWanted() ? undefined : libcExit();
  // Registered last, so it runs after every other 'exit' listener.
  if (exitNow)
    process.once('exit', () => {
      try {
        process.getBuiltinModule('node:module').flushCompileCache?.();
      } catch {
        // A cache not written is compiled again next time.
      }
      exitNow(code);
    });
  process.exit(code);
}

/** Node writes coverage and profiles while it tears down. */
function teardownWanted(): boolean {
  const options = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)];
  return Boolean(process.env.NODE_V8_COVERAGE) || options.some((option) => /^--(?:cpu-|heap-)?prof\b/.test(option));
}

function libcExit(): ((code: number) => void) | undefined {
  try {
    const _exit = loadFfi()?.dlopen(null, { _exit: { arguments: ['int32'], return: 'void' } }).functions._exit;
    return _exit && ((code) => void _exit(code));
  } catch {
    return undefined;
  }
}
