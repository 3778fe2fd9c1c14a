/**
 * Small files root keeps in its state dir (e.g. the bundle sequences): read without following a planted
 * symlink and bounded in size, replaced atomically inside a private directory — the safe-fs primitives, with
 * "missing" meaning "nothing recorded yet".
 */
import { open } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ensurePrivateDir, READ_NO_FOLLOW, writeFileAtomic } from './safe-fs.js';

/** The file's text, or undefined when it does not exist. A symlink in its place is an error (ELOOP). */
export async function readStateFile(path: string, maxBytes = 64 * 1024): Promise<string | undefined> {
  let handle;
  try {
    handle = await open(path, READ_NO_FOLLOW);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw Object.assign(new Error(`${path} is not a regular file`), { code: 'EINVAL' });
    if (info.size > maxBytes) throw Object.assign(new Error(`${path} is ${info.size} bytes, over ${maxBytes}`), { code: 'EFBIG' });
    return await handle.readFile('utf8');
  } finally {
    await handle.close();
  }
}

/** Replaces `path` with `text` atomically (temp file + fsync + rename) in a private (0700) directory. */
export async function writeStateFile(path: string, text: string): Promise<void> {
  await ensurePrivateDir(dirname(path));
  await writeFileAtomic(path, text);
}
