import { spawn } from 'node:child_process';
import { getPriority, setPriority } from 'node:os';
import type { Writable } from 'node:stream';
import type { Slot } from './_pool.js';
import { MAX_PAYLOAD_BYTES } from './bundle.js';
import { monotonicMs } from './clock.js';
import { processGroupContainer, type Containment } from './contain.js';
import type { BundledCheck, ContainmentMechanism } from './types.js';

export interface ExecuteOptions {
  prelude: string;
  timeoutMs: number;
  stdoutCapBytes: number;
  stderrCapBytes: number;
  /** The complete environment of the check; nothing else is inherited. */
  env: Record<string, string>;
  cwd: string;
  /** Path of bash; defaults to "bash" from the agent's PATH. */
  bash?: string;
  /**
   * Niceness of the check (0-19), set with setpriority() on the spawned bash before it reads its script, so
   * the check and its children run at it; a check never runs less nice than the agent. 0 leaves it as is.
   */
  nice?: number;
  /** The run's containment (see contain.ts); without one the check leads its own process group. */
  containment?: Containment;
  /**
   * A slot among the checks allowed to run at once. bash is spawned and moved into its cgroup before the
   * slot is taken, so that setup overlaps the checks running meanwhile; the script is sent, and the
   * timeout starts, once the slot is held. It is released when the check ends.
   */
  slot?: Slot;
  signal?: AbortSignal;
}

export interface CheckOutcome {
  check: BundledCheck;
  exitCode: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  durationMs: number;
  timedOut: boolean;
  stdoutOverflow: boolean;
  aborted: boolean;
  spawnError?: Error;
  /** How the check was contained. */
  containment: ContainmentMechanism;
  /** Processes still alive when the check's main process exited, killed then. */
  killedAfterExit: number;
}

// Once bash exited and everything it left was killed, waiting longer than this for the pipes to close
// means a process survived the kill (pgroup fallback: it left the process group).
const PIPE_CLOSE_GRACE_MS = 1_000;

// Node hands children socketpairs, which cannot be reopened through /dev/fd, so bash reads the script
// from fd 3 with a builtin (no extra process), closes fd 3 so the check's children don't inherit it, and
// evaluates it. The variable is unset by the evaluated text itself, so the check never sees it. Until the
// script arrives bash does nothing, which is when the agent moves it into its cgroup and sets its niceness.
// `read -N <count>` because it reads in blocks: `read -d ''` reads a socket one byte per read(2) (it must
// not read past its delimiter), ~40,000 system calls and ~11 ms of CPU per check for today's 40 KB of
// prelude and script. The count bounds the text: nothing from a bundle is longer than its payload.
const MAX_SCRIPT_CHARS = MAX_PAYLOAD_BYTES;
const READ_SCRIPT_FROM_FD3 = `IFS= read -r -N ${MAX_SCRIPT_CHARS} __gather_script <&3; exec 3<&-; eval "unset __gather_script; $__gather_script"`;

/** Sets the niceness of `pid` to at least `nice` (a process may only lower its priority). */
function renice(pid: number, nice: number): void {
  try {
    if (getPriority(pid) < nice) setPriority(pid, nice);
  } catch {
    // The check runs at the agent's niceness: better than not running.
  }
}

/**
 * Runs one check: `prelude + script` is written to bash through fd 3 (never argv, never disk), stdin is
 * /dev/null. The check leads its own process group and, where possible, its own cgroup (see contain.ts):
 * when bash exits, on timeout and on abort, every process it started is killed.
 */
export function executeCheck(check: BundledCheck, options: ExecuteOptions): Promise<CheckOutcome> {
  let started = monotonicMs();
  const container = options.containment?.forCheck(check.id) ?? processGroupContainer();
  // Taken in the order checks are started, so they run in that order whatever their setup takes.
  const slotGranted = options.slot?.acquire();
  const text = `${options.prelude}\n${check.script}`;
  return new Promise((resolve) => {
    let child;
    try {
      // In bytes: in the C locale bash counts bytes, in UTF-8 characters, never more than the bytes.
      const bytes = Buffer.byteLength(text);
      if (bytes > MAX_SCRIPT_CHARS) throw new Error(`the prelude and script are ${bytes} bytes, over the ${MAX_SCRIPT_CHARS} bash reads`);
      child = spawn(options.bash ?? 'bash', ['--noprofile', '--norc', '-c', READ_SCRIPT_FROM_FD3, `gather-${check.id}`], {
        stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
        env: options.env,
        cwd: options.cwd,
        detached: true,
      });
    } catch (error) {
      void slotGranted?.then(() => options.slot!.release());
      void container.release().then(() => resolve(failedSpawn(check, error as Error, started)));
      return;
    }
    const pid = child.pid;
    if (pid !== undefined && options.nice) renice(pid, options.nice);

    const stdout: Buffer[] = [];
    let stdoutBytes = 0;
    let stdoutOverflow = false;
    const stderr: Buffer[] = [];
    let stderrBytes = 0;
    let timedOut = false;
    let aborted = false;
    let spawnError: Error | undefined;
    let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    let killedAfterExit = 0;
    let settled = false;
    let holdsSlot = false;

    const finish = () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(graceTimer);
      if (holdsSlot) options.slot?.release();
      holdsSlot = false;
      options.signal?.removeEventListener('abort', onAbort);
      child.stdout?.destroy();
      child.stderr?.destroy();
      if (!exit) container.killAll();
      void container.release().then(() =>
        resolve({
          check,
          exitCode: exit?.code ?? null,
          signal: exit?.signal ?? null,
          stdout: Buffer.concat(stdout).toString('utf8'),
          stderr: Buffer.concat(stderr).toString('utf8'),
          durationMs: Math.round(monotonicMs() - started),
          timedOut,
          stdoutOverflow,
          aborted,
          ...(spawnError ? { spawnError } : {}),
          containment: container.mechanism,
          killedAfterExit,
        }),
      );
    };

    let timer: NodeJS.Timeout | undefined;
    let graceTimer: NodeJS.Timeout | undefined;
    const onAbort = () => {
      aborted = true;
      container.killAll();
    };
    if (options.signal?.aborted) onAbort();
    else options.signal?.addEventListener('abort', onAbort, { once: true });

    child.stdout!.on('data', (chunk: Buffer) => {
      if (stdoutOverflow) return;
      stdoutBytes += chunk.length;
      if (stdoutBytes > options.stdoutCapBytes) {
        // The output is unusable once cut, so keep nothing and stop the check instead of draining it.
        stdoutOverflow = true;
        stdout.length = 0;
        container.killAll();
        return;
      }
      stdout.push(chunk);
    });
    child.stderr!.on('data', (chunk: Buffer) => {
      const room = options.stderrCapBytes - stderrBytes;
      if (room <= 0) return;
      const kept = chunk.length > room ? chunk.subarray(0, room) : chunk;
      stderr.push(kept);
      stderrBytes += kept.length;
    });

    const scriptPipe = child.stdio[3] as Writable;
    // bash may exit before reading the whole script (e.g. `exit` early): EPIPE is expected then.
    scriptPipe.on('error', () => {});
    // The script goes out once bash is in its cgroup (until then it cannot start anything) and the check
    // holds a slot; its duration and timeout count from then.
    const start = async () => {
      if (pid !== undefined) await container.adopt(pid);
      if (options.slot) {
        await slotGranted;
        holdsSlot = true;
        if (settled) {
          holdsSlot = false;
          options.slot.release();
          return;
        }
      }
      started = monotonicMs();
      timer = setTimeout(() => {
        timedOut = true;
        container.killAll();
      }, options.timeoutMs);
      scriptPipe.end(text);
    };
    void start();

    child.on('error', (error) => {
      spawnError = error;
      finish();
    });
    child.on('exit', (code, signal) => {
      exit = { code, signal };
      killedAfterExit = container.afterExit();
      graceTimer = setTimeout(finish, PIPE_CLOSE_GRACE_MS);
    });
    child.on('close', finish);
  });
}

function failedSpawn(check: BundledCheck, error: Error, started: number): CheckOutcome {
  return {
    check,
    exitCode: null,
    signal: null,
    stdout: '',
    stderr: '',
    durationMs: Math.round(monotonicMs() - started),
    timedOut: false,
    stdoutOverflow: false,
    aborted: false,
    spawnError: error,
    containment: 'pgroup',
    killedAfterExit: 0,
  };
}
