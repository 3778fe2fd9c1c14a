/**
 * Small files root keeps in its state dir, read and written without ever following a planted symlink:
 * reads use O_NOFOLLOW, writes go to a fresh temp file (O_CREAT | O_EXCL | O_NOFOLLOW, mode 0600) that is
 * fsynced and renamed over the target, so a reader sees the old or the new content, never half of one.
 */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { mkdir, open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = constants;

/** The file's text, or undefined when it does not exist. A symlink in its place is an error (ELOOP). */
export async function readStateFile(path: string, maxBytes = 64 * 1024): Promise<string | undefined> {
  let handle;
  try {
    handle = await open(path, O_RDONLY | O_NOFOLLOW);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw Object.assign(new Error(`${path} is not a regular file`), { code: 'EINVAL' });
    if (info.size > maxBytes) throw Object.assign(new Error(`${path} is ${info.size} bytes, over ${maxBytes}`), { code: 'EFBIG' });
    return (await handle.readFile()).toString('utf8');
  } finally {
    await handle.close();
  }
}

/** Replaces `path` with `text` atomically (temp file + fsync + rename); the directory is created 0700. */
export async function writeStateFile(path: string, text: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const temp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await open(temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
  try {
    try {
      await handle.writeFile(text);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, path);
  } catch (error) {
    await unlink(temp).catch(() => undefined);
    throw error;
  }
}
