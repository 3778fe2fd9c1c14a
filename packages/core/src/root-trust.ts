/**
 * Root trusts only root: a file or directory that root reads its configuration, keys or secrets from, or
 * writes its state to, must be owned by root and writable by nobody else, and so must every directory
 * above it (as sshd's StrictModes requires) — whoever can write a parent can swap what is below it. A
 * sticky world-writable ancestor such as /tmp does not count against a root-owned path below it: the
 * sticky bit keeps others from renaming or deleting root's entries. A symbolic link on the way must be
 * root's too, and so must everything on the path it resolves to.
 *
 * Not root (e.g. `pnpm demo` as a developer): nothing is checked; a user trusts their own files.
 */
import { lstatSync, realpathSync, type Stats } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { ConfigError } from './errors.js';

const GROUP_OR_OTHER_WRITE = 0o022;
const STICKY = 0o1000;

/** What is wrong with one component of a path, with the shell command that fixes it. */
function componentProblem(path: string, info: Stats, isTarget: boolean): string | undefined {
  const notRoot = info.uid !== 0;
  if (info.isSymbolicLink()) {
    return notRoot
      ? `${path} is a symbolic link owned by uid ${info.uid}. Fix: replace it with root's own (ln -sfn <target> ${path} as root)`
      : undefined;
  }
  const writable = (info.mode & GROUP_OR_OTHER_WRITE) !== 0;
  const stickyAncestor = !isTarget && info.isDirectory() && (info.mode & STICKY) !== 0;
  const badWrite = writable && !stickyAncestor;
  if (!notRoot && !badWrite) return undefined;
  const mode = (info.mode & 0o7777).toString(8).padStart(4, '0');
  const writers = [info.mode & 0o020 ? 'its group' : '', info.mode & 0o002 ? 'others' : ''].filter(Boolean).join(' and ');
  const faults = [notRoot ? `owned by uid ${info.uid}` : '', badWrite ? `writable by ${writers} (mode ${mode})` : '']
    .filter(Boolean)
    .join(', ');
  // A shared sticky directory such as /tmp is not root's to lock down: root's own directory goes below it.
  const shared = badWrite && info.isDirectory() && (info.mode & STICKY) !== 0;
  const fix = shared
    ? `use a directory of root's own instead, e.g. install -d -m 0700 ${join(path, 'gather')}`
    : [notRoot ? `chown root:root ${path}` : '', badWrite ? `chmod go-w ${path}` : ''].filter(Boolean).join(' && ');
  return `${path} is ${faults}. Fix: ${fix}`;
}

/** Checks every existing component of `path` (which has no `..`) from itself up to `/`. */
function walk(path: string): { problem?: string; sawLink: boolean } {
  let sawLink = false;
  let current = path;
  let isTarget = true;
  for (;;) {
    let info: Stats | undefined;
    try {
      info = lstatSync(current);
    } catch (error) {
      // Not there yet (a state dir created on first use, by root): its parents decide.
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    if (info) {
      sawLink ||= info.isSymbolicLink();
      const problem = componentProblem(current, info, isTarget);
      if (problem) return { problem, sawLink };
      isTarget = false;
    }
    const parent = dirname(current);
    if (parent === current) return { sawLink };
    current = parent;
  }
}

/** realpath of a path whose last components may not exist yet. */
function realpathOfExisting(path: string): string {
  try {
    return realpathSync(path);
  } catch (error) {
    const parent = dirname(path);
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT' || parent === path) throw error;
    return join(realpathOfExisting(parent), basename(path));
  }
}

/**
 * Undefined when root may trust `path`, else one line naming the path at fault and the command that fixes
 * it. Only checks when running as root (`euid`, default the process's).
 */
export function rootOwnershipProblem(path: string, what: string, euid: number | undefined = process.geteuid?.()): string | undefined {
  if (euid !== 0) return undefined;
  const absolute = resolve(path);
  try {
    const lexical = walk(absolute);
    let problem = lexical.problem;
    if (!problem && lexical.sawLink) problem = walk(realpathOfExisting(absolute)).problem;
    return problem ? `root will not trust ${what} ${absolute}: ${problem}` : undefined;
  } catch (error) {
    return `root cannot check ${what} ${absolute} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`;
  }
}

/** Throws a ConfigError (exit 2 in the agent) when root may not trust `path`; see rootOwnershipProblem. */
export function assertRootOwnedPath(path: string, what: string, euid?: number): void {
  const problem = rootOwnershipProblem(path, what, euid);
  if (problem) throw new ConfigError(`${problem[0]!.toUpperCase()}${problem.slice(1)}.`);
}
