/**
 * File operations for the directories root writes in (state, spool, cache): nothing follows a symbolic
 * link planted there, so a link never makes root read or overwrite another file. New files are created with
 * O_EXCL (which fails on any existing name, a link included), replaced files go through a fresh temp file
 * renamed over the name (rename replaces a link itself, never its target), and reads use O_NOFOLLOW.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, constants, openSync, readFileSync, writeFileSync } from 'node:fs';
import { lstat, mkdir, open, rename, unlink, type FileHandle } from 'node:fs/promises';

const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_NONBLOCK } = constants;
/** Flags of a file that must not exist yet, not even as a symbolic link. */
export const CREATE_EXCLUSIVE = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW;
/**
 * Flags to read a file that must not be a symbolic link. O_NONBLOCK: a FIFO planted in its place would hold
 * open() until a writer comes, forever, and with a synchronous read the whole process, signals included; this
 * way it opens and reads as empty (or fails), and a regular file reads as ever.
 */
export const READ_NO_FOLLOW = O_RDONLY | O_NOFOLLOW | O_NONBLOCK;

/** Reads a file as UTF-8; a symbolic link fails with ELOOP instead of being followed. */
export async function readFileNoFollow(path: string): Promise<string> {
  const handle = await open(path, READ_NO_FOLLOW);
  try {
    return await handle.readFile('utf8');
  } finally {
    await handle.close();
  }
}

export function readFileNoFollowSync(path: string): string {
  const fd = openSync(path, READ_NO_FOLLOW);
  try {
    return readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
}

/** Opens a new file for writing; fails with EEXIST when the name exists in any form. */
export function openExclusive(path: string, mode = 0o600): Promise<FileHandle> {
  return open(path, CREATE_EXCLUSIVE, mode);
}

/** Creates a new file with `data`; fails with EEXIST when the name exists in any form. */
export async function createExclusive(path: string, data: string | Uint8Array, mode = 0o600): Promise<void> {
  const handle = await openExclusive(path, mode);
  try {
    await handle.writeFile(data);
  } finally {
    await handle.close();
  }
}

/** createExclusive, synchronously: for the few bytes of a lock file, where a thread-pool round trip costs more. */
export function createExclusiveSync(path: string, data: string | Uint8Array, mode = 0o600): void {
  const fd = openSync(path, CREATE_EXCLUSIVE, mode);
  try {
    writeFileSync(fd, data);
  } finally {
    closeSync(fd);
  }
}

/**
 * Writes `path` whole or not at all: a temp file with a random name next to it (O_EXCL), fsynced, then
 * renamed over `path`. A symbolic link at `path` is replaced, its target untouched.
 */
export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  options: { mode?: number; sync?: boolean } = {},
): Promise<void> {
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  const handle = await openExclusive(tmp, options.mode ?? 0o600);
  try {
    try {
      await handle.writeFile(data);
      if (options.sync ?? true) await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, path);
  } catch (error) {
    await unlink(tmp).catch(() => undefined);
    throw error;
  }
}

/** A directory gather makes for itself is a symbolic link or not a directory. */
export class UnsafeDirectoryError extends Error {
  override name = 'UnsafeDirectoryError';
  /** By name, not `instanceof`: the adapters may load another copy of core. */
  static isInstance(error: unknown): error is UnsafeDirectoryError {
    return error instanceof Error && error.name === 'UnsafeDirectoryError';
  }
}

/**
 * Creates a directory gather owns inside one of its own (mode 0700, parents as needed) and makes sure it is
 * a real directory: a symbolic link planted in its place would send every later write elsewhere.
 */
export async function ensurePrivateDir(path: string): Promise<void> {
  await mkdir(path, { recursive: true, mode: 0o700 });
  const info = await lstat(path);
  if (!info.isDirectory()) {
    throw new UnsafeDirectoryError(
      `${path} is ${info.isSymbolicLink() ? 'a symbolic link' : 'not a directory'}, where gather keeps a private directory; ` +
        `nothing was written through it. Remove it (rm ${path}) and run again.`,
    );
  }
}
