import { mkdtempSync, statSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createExclusive, ensurePrivateDir, readFileNoFollow, UnsafeDirectoryError, writeFileAtomic } from '../src/index.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});
const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'gather-safe-fs-'));
  dirs.push(dir);
  return dir;
};

describe("safe file operations in root's directories", () => {
  it('a planted symbolic link is never written or read through; the victim is untouched', async () => {
    const dir = tempDir();
    const victim = join(tempDir(), 'victim');
    writeFileSync(victim, 'precious\n');
    symlinkSync(victim, join(dir, 'new'));
    symlinkSync(victim, join(dir, 'state.json'));
    await expect(createExclusive(join(dir, 'new'), 'x')).rejects.toMatchObject({ code: 'EEXIST' });
    await expect(readFileNoFollow(join(dir, 'state.json'))).rejects.toMatchObject({ code: 'ELOOP' });
    await writeFileAtomic(join(dir, 'state.json'), '{"ok":true}');
    expect(readFileSync(join(dir, 'state.json'), 'utf8')).toBe('{"ok":true}'); // the link itself was replaced
    expect(readFileSync(victim, 'utf8')).toBe('precious\n');
    expect(readdirSync(dir).sort()).toEqual(['new', 'state.json']); // no temp file left
  });

  it('refuses a private directory replaced by a symbolic link, and creates a missing one with mode 0700', async () => {
    const dir = tempDir();
    const elsewhere = tempDir();
    symlinkSync(elsewhere, join(dir, 'cache'));
    await expect(ensurePrivateDir(join(dir, 'cache'))).rejects.toThrow(UnsafeDirectoryError);
    await expect(ensurePrivateDir(join(dir, 'cache'))).rejects.toThrow(/cache is a symbolic link.*Remove it \(rm .*cache\)/);
    await ensurePrivateDir(join(dir, 'a', 'b'));
    expect(statSync(join(dir, 'a', 'b')).mode & 0o777).toBe(0o700);
    await ensurePrivateDir(join(dir, 'a', 'b')); // already there: fine
    expect(readdirSync(elsewhere)).toEqual([]);
  });
});
