/**
 * node:ffi (Node 26.1+, experimental), for the few libc calls Node has no API for: ioprio_set() (io-priority.ts)
 * and the agent's _exit(). Callers fall back to Node's own way where this returns undefined.
 */

/** The part of node:ffi gather uses (its types are not in @types/node 22). */
export interface Ffi {
  dlopen(
    path: null,
    definitions: Record<string, { arguments: string[]; return: string }>,
  ): { lib: { close(): void }; functions: Record<string, (...args: Array<bigint | number>) => unknown> };
}

/**
 * node:ffi where this Node has it. Loading it emits an ExperimentalWarning, which would reach the user's
 * terminal and logs on every run with nothing for them to do: it is kept quiet while the module loads.
 */
export function loadFfi(): Ffi | undefined {
  if (typeof process.getBuiltinModule !== 'function') return undefined;
  const emitWarning = process.emitWarning;
  process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
    const type = typeof rest[0] === 'string' ? rest[0] : (rest[0] as { type?: string } | undefined)?.type;
    if (type !== 'ExperimentalWarning') (emitWarning as (...args: unknown[]) => void).call(process, warning, ...rest);
  }) as typeof process.emitWarning;
  try {
    return process.getBuiltinModule('node:ffi') as Ffi | undefined;
  } catch {
    return undefined;
  } finally {
    process.emitWarning = emitWarning;
  }
}
