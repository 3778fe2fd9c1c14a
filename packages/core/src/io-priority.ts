/**
 * The idle I/O scheduling class for this process, set once: every check started afterwards inherits it. Node
 * has no ioprio_set(). Where Node's FFI exists (Node 26.1+, experimental) the agent makes that one system
 * call itself; elsewhere it runs `ionice -c3 -p <own pid>`. The system call saves starting a program: ~14 ms
 * of a 1-check run on a 2-core VM, where forking the agent and loading ionice dominate (tools/bench/startup).
 */
import { spawn } from 'node:child_process';
import { loadFfi } from './ffi.js';

// include/uapi/linux/ioprio.h: the class sits above 13 bits of level; "who" 1 with id 0 is the calling thread,
// the one that starts the checks (ionice -p <pid> names the main thread, the same one in the agent).
const IOPRIO_WHO_PROCESS = 1n;
const IOPRIO_IDLE = 3n << 13n;
/** The system call's number, which differs between architectures (asm-generic for arm64). */
const SYS_IOPRIO_SET: Partial<Record<string, bigint>> = { x64: 251n, arm64: 30n };

let idleIoClass: Promise<boolean> | undefined;

/**
 * Puts this process (and so every check it starts afterwards) in the idle I/O class, once per process.
 * Resolves false where that is refused (e.g. some containers) or `ionice` is missing.
 */
export function enterIdleIoClass(): Promise<boolean> {
  idleIoClass ??= enterBySystemCall() ?? enterWithIonice();
  return idleIoClass;
}

/**
 * The ioprio_set() system call through node:ffi: its answer, or undefined where FFI is missing (Node 22 and
 * 24, `--no-experimental-ffi`, another architecture) or answers unlike the API this was written against.
 */
export function enterBySystemCall(): Promise<boolean> | undefined {
  const number = process.platform === 'linux' ? SYS_IOPRIO_SET[process.arch] : undefined;
  if (number === undefined) return undefined;
  const ffi = loadFfi();
  if (!ffi) return undefined;
  try {
    const { lib, functions } = ffi.dlopen(null, {
      syscall: { arguments: ['int64', 'int64', 'int64', 'int64'], return: 'int64' },
    });
    try {
      const answer = functions.syscall!(number, IOPRIO_WHO_PROCESS, 0n, IOPRIO_IDLE);
      // -1: refused (EPERM), as ionice would be; anything but 0 or -1 means the call was not what was meant.
      if (answer === 0n || answer === -1n) return Promise.resolve(answer === 0n);
      return undefined;
    } finally {
      lib.close();
    }
  } catch {
    return undefined;
  }
}

/** `ionice -c3 -p <own pid>`: true when it exits 0. */
export function enterWithIonice(): Promise<boolean> {
  return new Promise((resolve) => {
    const child = spawn('ionice', ['-c3', '-p', String(process.pid)], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
      stdio: 'ignore',
    });
    child.once('error', () => resolve(false));
    child.once('exit', (code) => resolve(code === 0));
  });
}
