/**
 * Small files root keeps in its state dir (e.g. the bundle sequences): read without following a planted
 * symlink and bounded in size, replaced atomically inside a private directory — the safe-fs primitives, with
 * "missing" meaning "nothing recorded yet".
 */
import { closeSync, fstatSync, openSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { ensurePrivateDir, READ_NO_FOLLOW, writeFileAtomic } from './safe-fs.js';

/**
 * The file's text, or undefined when it does not exist. A symlink in its place is an error (ELOOP). Read
 * synchronously: a few bytes, where a thread-pool round trip per call costs more (tools/bench/startup).
 */
export async function readStateFile(path: string, maxBytes = 64 * 1024): Promise<string | undefined> {
  let fd;
  try {
    fd = openSync(path, READ_NO_FOLLOW);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  try {
    const info = fstatSync(fd);
    if (!info.isFile()) throw Object.assign(new Error(`${path} is not a regular file`), { code: 'EINVAL' });
    if (info.size > maxBytes) throw Object.assign(new Error(`${path} is ${info.size} bytes, over ${maxBytes}`), { code: 'EFBIG' });
    return readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
}

/** Replaces `path` with `text` atomically (temp file + fsync + rename) in a private (0700) directory. */
export async function writeStateFile(path: string, text: string): Promise<void> {
  await ensurePrivateDir(dirname(path));
  await writeFileAtomic(path, text);
}
