/**
 * Containment of checks: whatever a check starts (`setsid cmd &`, double forks, daemons) ends with it.
 *
 * - `cgroup`: each check runs in its own cgroup v2 leaf below the agent's own cgroup
 *   (`<own>/gather-<pid>-<run>/<check>-<n>`). Leaving a process group or a session does not leave a cgroup,
 *   and `cgroup.kill` (Linux >= 5.14) SIGKILLs every member at once. No controller is enabled, so the
 *   no-internal-processes rule of cgroup v2 never applies and the agent can stay where it was started.
 * - `pgroup`: the fallback where no writable cgroup v2 hierarchy with `cgroup.kill` exists (not root, no
 *   delegation, old kernel): each check leads a process group, which is killed. A process that calls
 *   setsid() escapes it.
 *
 * Either way, processes still alive when a check's main process exits are counted (`killedAfterExit`).
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { monotonicMs } from './clock.js';
import { ConfigError } from './errors.js';
import type { ContainmentMechanism } from './types.js';

/** `auto`: a cgroup where possible, else a process group. The others force one (tests, odd hosts). */
export type ContainmentMode = 'auto' | ContainmentMechanism;
export const CONTAINMENT_MODES: readonly ContainmentMode[] = ['auto', 'cgroup', 'pgroup'];

/** The containment of one check, from spawn to the removal of its cgroup. */
export interface CheckContainer {
  readonly mechanism: ContainmentMechanism;
  /**
   * Moves the freshly spawned check in, before it can start anything; falls back to its process group.
   * Asynchronous: a migration into a cgroup waits for an RCU grace period in the kernel (milliseconds on a
   * busy machine), which must not stall the agent's event loop and the other checks.
   */
  adopt(pid: number): Promise<void>;
  /** Kills everything of the check (timeout, abort, stdout over the cap). */
  killAll(): void;
  /** The main process exited: kills what is left and returns how many processes that was. */
  afterExit(): number;
  /** Waits until nothing of the check is left and removes its cgroup. */
  release(): Promise<void>;
}

/** The containment of one run: makes a container per check. */
export interface Containment {
  readonly mechanism: ContainmentMechanism;
  /** Why cgroups are not used, when they are not. */
  readonly fallbackReason?: string;
  forCheck(checkId: string): CheckContainer;
  /** Removes the run's cgroup (its checks' cgroups are already gone). */
  close(): void;
}

/** How long a killed cgroup may take to empty (processes in uninterruptible sleep) before we give up on it. */
const EMPTY_WAIT_MS = 10_000;
const EMPTY_POLL_MS = 10;

function killGroup(pgid: number | undefined): void {
  if (pgid === undefined) return;
  try {
    process.kill(-pgid, 'SIGKILL');
  } catch {
    // ESRCH: the whole group is already gone.
  }
}

/** Members of process group `pgid`, read from /proc (only called when the group is known to be non-empty). */
function groupMembers(pgid: number): number {
  let count = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // Fields after the parenthesised command: state, ppid, pgrp, ...
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) === pgid) count++;
    } catch {
      // The process ended while we looked.
    }
  }
  return count;
}

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

/** A check led by its own process group (the spawn is `detached`). */
export function processGroupContainer(): CheckContainer {
  let pgid: number | undefined;
  let killed = false;
  return {
    mechanism: 'pgroup',
    adopt: async (pid) => {
      pgid = pid;
    },
    killAll: () => {
      killed = true;
      killGroup(pgid);
    },
    afterExit: () => {
      if (pgid === undefined) return 0;
      const left = !killed && groupAlive(pgid) ? groupMembers(pgid) : 0;
      killed = true;
      killGroup(pgid);
      return left;
    },
    release: async () => {},
  };
}

function cgroupContainer(dir: string): CheckContainer {
  const fallback = processGroupContainer();
  let mechanism: ContainmentMechanism = 'cgroup';
  let adopted = false;
  let killed = false;
  const kill = () => {
    try {
      writeFileSync(join(dir, 'cgroup.kill'), '1');
    } catch {
      // Gone already, or never created.
    }
  };
  return {
    get mechanism() {
      return mechanism;
    },
    adopt: async (pid) => {
      await fallback.adopt(pid);
      try {
        await writeFile(join(dir, 'cgroup.procs'), String(pid));
        adopted = true;
      } catch {
        // A check killed meanwhile (timeout, abort) is gone: that is no failure of its containment.
        if (!killed) mechanism = 'pgroup';
      }
    },
    killAll: () => {
      killed = true;
      if (adopted) kill();
      fallback.killAll();
    },
    afterExit: () => {
      if (!adopted) return fallback.afterExit();
      let left = 0;
      if (!killed) {
        try {
          left = readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).length;
        } catch {
          left = 0;
        }
      }
      killed = true;
      if (left > 0) kill();
      fallback.killAll();
      return left;
    },
    release: async () => {
      const deadline = monotonicMs() + EMPTY_WAIT_MS;
      while (adopted && populated(dir) && monotonicMs() < deadline) {
        kill();
        await sleep(EMPTY_POLL_MS);
      }
      removeDir(dir);
    },
  };
}

function populated(dir: string): boolean {
  try {
    return /^populated 1$/m.test(readFileSync(join(dir, 'cgroup.events'), 'utf8'));
  } catch {
    return false;
  }
}

function removeDir(dir: string): void {
  try {
    rmdirSync(dir);
  } catch {
    // Still busy (a process stuck in the kernel) or already gone: the run's cleanup or the next run retries.
  }
}

/** Decodes the octal escapes (`\040` for a space) of /proc/self/mountinfo fields. */
function unescapeMountField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

/**
 * The directory of this process's own cgroup v2, from /proc/self/cgroup (`0::/path`) and the cgroup2
 * mount in /proc/self/mountinfo (wherever it is: `/sys/fs/cgroup` on unified hosts,
 * `/sys/fs/cgroup/unified` on hybrid ones). Throws with the reason when there is none.
 */
export function ownCgroupDir(procSelf = '/proc/self'): string {
  const line = readFileSync(join(procSelf, 'cgroup'), 'utf8')
    .split('\n')
    .find((l) => l.startsWith('0::'));
  if (!line) throw new Error('this process is in no cgroup v2 (cgroup v1 only)');
  const own = line.slice(3);
  for (const mount of readFileSync(join(procSelf, 'mountinfo'), 'utf8').split('\n')) {
    const [left, right] = mount.split(' - ');
    if (!left || !right || right.split(' ')[0] !== 'cgroup2') continue;
    const fields = left.split(' ');
    const root = unescapeMountField(fields[3] ?? '');
    const mountPoint = unescapeMountField(fields[4] ?? '');
    if (own !== root && !own.startsWith(root === '/' ? '/' : `${root}/`)) continue;
    return join(mountPoint, root === '/' ? own : own.slice(root.length));
  }
  throw new Error('no cgroup2 file system is mounted');
}

/** Removes leftovers of agents that died mid-run (their pid is gone): kills what is in them, then rmdir. */
function sweepStale(parent: string): void {
  let entries: string[];
  try {
    entries = readdirSync(parent);
  } catch {
    return;
  }
  for (const entry of entries) {
    const match = /^gather-(\d+)-/.exec(entry);
    if (!match || Number(match[1]) === process.pid) continue;
    try {
      process.kill(Number(match[1]), 0);
      continue; // that agent is alive
    } catch {
      // dead: its cgroups are ours to clean
    }
    const runDir = join(parent, entry);
    try {
      for (const child of readdirSync(runDir, { withFileTypes: true })) {
        if (!child.isDirectory()) continue;
        const dir = join(runDir, child.name);
        try {
          writeFileSync(join(dir, 'cgroup.kill'), '1');
        } catch {
          // nothing to kill
        }
        removeDir(dir);
      }
    } catch {
      // raced with another sweeper
    }
    removeDir(runDir);
  }
}

let sequence = 0;

function cgroupContainment(runId: string): Containment {
  const parent = ownCgroupDir();
  sweepStale(parent);
  const runDir = join(parent, `gather-${process.pid}-${runId.replace(/[^A-Za-z0-9]/g, '').slice(0, 12)}-${++sequence}`);
  mkdirSync(runDir);
  if (!existsSync(join(runDir, 'cgroup.kill'))) {
    removeDir(runDir);
    throw new Error('the kernel has no cgroup.kill (Linux >= 5.14 needed)');
  }
  let checks = 0;
  return {
    mechanism: 'cgroup',
    forCheck: (checkId) => {
      const dir = join(runDir, `${checkId.replace(/[^a-z0-9]/g, '_')}-${++checks}`);
      try {
        mkdirSync(dir);
      } catch {
        return processGroupContainer();
      }
      return cgroupContainer(dir);
    },
    close: () => removeDir(runDir),
  };
}

function errorText(error: unknown): string {
  const code = (error as NodeJS.ErrnoException)?.code;
  const message = (error as Error)?.message ?? String(error);
  return code === 'EACCES' || code === 'EPERM' || code === 'EROFS'
    ? `the cgroup hierarchy is not writable (${code}): run as root, or delegate a cgroup subtree (systemd: Delegate=yes)`
    : message;
}

/**
 * The containment of a run. `auto` uses a cgroup where this process may create one below its own cgroup
 * and the kernel has cgroup.kill, else process groups; `cgroup` throws a ConfigError instead of falling back.
 */
export function openContainment(options: { mode?: ContainmentMode; runId: string }): Containment {
  const mode = options.mode ?? 'auto';
  if (!CONTAINMENT_MODES.includes(mode)) {
    throw new ConfigError(`Unknown containment "${String(mode)}". Use one of: ${CONTAINMENT_MODES.join(', ')}.`);
  }
  if (mode !== 'pgroup') {
    try {
      return cgroupContainment(options.runId);
    } catch (error) {
      if (mode === 'cgroup') {
        throw new ConfigError(
          `Containment "cgroup" is not available: ${errorText(error)}. Use containment "auto" to fall back to process groups.`,
        );
      }
      return { mechanism: 'pgroup', fallbackReason: errorText(error), forCheck: processGroupContainer, close: () => {} };
    }
  }
  return { mechanism: 'pgroup', fallbackReason: 'process groups were asked for', forCheck: processGroupContainer, close: () => {} };
}
