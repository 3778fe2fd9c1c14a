import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import type { Writable } from 'node:stream';
import type { BundledCheck } from './types.js';

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
  /** Added to the check's niceness (0-19); 0 leaves it unchanged. */
  nice?: number;
  /**
   * Run the check in the idle I/O scheduling class (`ionice -c3`) when `ionice` is on the check's PATH; it
   * gets disk time only when no other process wants it. Default false.
   */
  ionice?: boolean;
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
}

// Background children of a check keep its pipes open; once bash itself exited and its group was killed,
// waiting longer than this for the pipes to close means something escaped the group.
const PIPE_CLOSE_GRACE_MS = 1_000;

// Node hands children socketpairs, which cannot be reopened through /dev/fd, so bash reads the script
// from fd 3 with a builtin (no extra process), closes fd 3 so the check's children don't inherit it, and
// evaluates it. The variable is unset by the evaluated text itself, so the check never sees it.
const READ_SCRIPT_FROM_FD3 = `IFS= read -r -d '' __gather_script <&3; exec 3<&-; eval "unset __gather_script; $__gather_script"`;

const ioniceCache = new Map<string, string | undefined>();

/** Absolute path of `ionice` on this PATH, or undefined (looked up once per PATH). */
export function findIonice(path: string | undefined): string | undefined {
  const key = path ?? '';
  if (ioniceCache.has(key)) return ioniceCache.get(key);
  let found: string | undefined;
  for (const dir of key.split(delimiter)) {
    if (!dir) continue;
    try {
      accessSync(join(dir, 'ionice'), constants.X_OK);
      found = join(dir, 'ionice');
      break;
    } catch {
      // not here
    }
  }
  ioniceCache.set(key, found);
  return found;
}

/**
 * The command line of a check: bash, optionally behind `ionice -c3 -t` and `nice -n N`. Both exec the next
 * program, so the spawned pid stays the process group leader that a timeout kills. `-t`: if the idle class
 * cannot be set (e.g. some containers), the check still runs.
 */
export function checkCommand(bash: string, bashArgs: string[], options: { nice?: number; ionice?: boolean; path?: string }): [string, string[]] {
  let command: [string, string[]] = [bash, bashArgs];
  if (options.nice) command = ['nice', ['-n', String(options.nice), command[0], ...command[1]]];
  const ionice = options.ionice ? findIonice(options.path) : undefined;
  if (ionice) command = [ionice, ['-c3', '-t', command[0], ...command[1]]];
  return command;
}

function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // ESRCH: the whole group is already gone.
  }
}

/**
 * Runs one check: `prelude + script` is written to bash through fd 3 (never argv, never disk), stdin is
 * /dev/null, and the check leads its own process group so a timeout kills everything it started.
 */
export function executeCheck(check: BundledCheck, options: ExecuteOptions): Promise<CheckOutcome> {
  const started = performance.now();
  return new Promise((resolve) => {
    let child;
    const bash = options.bash ?? 'bash';
    const bashArgs = ['--noprofile', '--norc', '-c', READ_SCRIPT_FROM_FD3, `gather-${check.id}`];
    const [command, args] = checkCommand(bash, bashArgs, {
      ...(options.nice ? { nice: options.nice } : {}),
      ...(options.ionice ? { ionice: true, path: options.env.PATH } : {}),
    });
    try {
      child = spawn(command, args, {
        stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
        env: options.env,
        cwd: options.cwd,
        detached: true,
      });
    } catch (error) {
      resolve(failedSpawn(check, error as Error, started));
      return;
    }

    const stdout: Buffer[] = [];
    let stdoutBytes = 0;
    let stdoutOverflow = false;
    const stderr: Buffer[] = [];
    let stderrBytes = 0;
    let timedOut = false;
    let aborted = false;
    let spawnError: Error | undefined;
    let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    let settled = false;

    const finish = () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(graceTimer);
      options.signal?.removeEventListener('abort', onAbort);
      child.stdout?.destroy();
      child.stderr?.destroy();
      resolve({
        check,
        exitCode: exit?.code ?? null,
        signal: exit?.signal ?? null,
        stdout: Buffer.concat(stdout).toString('utf8'),
        stderr: Buffer.concat(stderr).toString('utf8'),
        durationMs: Math.round(performance.now() - started),
        timedOut,
        stdoutOverflow,
        aborted,
        ...(spawnError ? { spawnError } : {}),
      });
    };

    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child.pid);
    }, options.timeoutMs);
    let graceTimer: NodeJS.Timeout | undefined;
    const onAbort = () => {
      aborted = true;
      killGroup(child.pid);
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
        killGroup(child.pid);
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
    scriptPipe.end(`${options.prelude}\n${check.script}`);

    child.on('error', (error) => {
      spawnError = error;
      finish();
    });
    child.on('exit', (code, signal) => {
      exit = { code, signal };
      killGroup(child.pid);
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
    durationMs: Math.round(performance.now() - started),
    timedOut: false,
    stdoutOverflow: false,
    aborted: false,
    spawnError: error,
  };
}
