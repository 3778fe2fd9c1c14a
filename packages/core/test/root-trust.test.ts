// Run as root (CI is): files owned by nobody (65534) and links planted by them.
import { chmodSync, chownSync, lchownSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { assertRootOwnedPath, ConfigError, rootOwnershipProblem } from '../src/index.js';

const NOBODY = 65534;
const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});
const rootDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'gather-trust-'));
  dirs.push(dir);
  return dir;
};

describe('rootOwnershipProblem (as root)', () => {
  it('accepts a root-owned path below the sticky /tmp, and one not created yet below a root-owned dir', () => {
    expect(process.geteuid?.()).toBe(0);
    const dir = rootDir();
    writeFileSync(join(dir, 'key.pem'), 'x');
    expect(rootOwnershipProblem(join(dir, 'key.pem'), 'the public key')).toBeUndefined();
    expect(rootOwnershipProblem(join(dir, 'state', 'deeper'), 'the state directory')).toBeUndefined();
  });

  it('refuses a symbolic link another user planted, even to a root-owned file', () => {
    const dir = rootDir();
    writeFileSync(join(dir, 'real.pem'), 'x');
    symlinkSync(join(dir, 'real.pem'), join(dir, 'link.pem'));
    lchownSync(join(dir, 'link.pem'), NOBODY, NOBODY);
    expect(rootOwnershipProblem(join(dir, 'link.pem'), 'the public key')).toMatch(/link\.pem is a symbolic link owned by uid 65534/);
  });

  it('refuses a world-writable ancestor without the sticky bit, and a missing path below a directory nobody owns', () => {
    const dir = rootDir();
    mkdirSync(join(dir, 'open'));
    chmodSync(join(dir, 'open'), 0o777);
    writeFileSync(join(dir, 'open', 'f'), 'x');
    expect(rootOwnershipProblem(join(dir, 'open', 'f'), 'the CA file')).toBe(
      `root will not trust the CA file ${dir}/open/f: ${dir}/open is writable by its group and others (mode 0777). Fix: chmod go-w ${dir}/open`,
    );
    chmodSync(join(dir, 'open'), 0o1777); // sticky, like /tmp: its root-owned entries are safe
    expect(rootOwnershipProblem(join(dir, 'open', 'f'), 'the CA file')).toBeUndefined();
    mkdirSync(join(dir, 'theirs'));
    chownSync(join(dir, 'theirs'), NOBODY, NOBODY);
    expect(rootOwnershipProblem(join(dir, 'theirs', 'spool'), 'the spool directory')).toMatch(
      /theirs is owned by uid 65534\. Fix: chown root:root/,
    );
  });

  it("refuses a shared sticky directory itself as a state dir, and says to use root's own below it", () => {
    expect(rootOwnershipProblem('/tmp', 'the state directory')).toBe(
      "root will not trust the state directory /tmp: /tmp is writable by its group and others (mode 1777). Fix: use a directory of root's own instead, e.g. install -d -m 0700 /tmp/gather",
    );
  });

  it('checks nothing for another user, and throws a ConfigError through assertRootOwnedPath', () => {
    const dir = rootDir();
    writeFileSync(join(dir, 'f'), 'x');
    chownSync(join(dir, 'f'), NOBODY, NOBODY);
    expect(rootOwnershipProblem(join(dir, 'f'), 'the public key', 1000)).toBeUndefined();
    expect(() => assertRootOwnedPath(join(dir, 'f'), 'the public key')).toThrow(ConfigError);
    expect(() => assertRootOwnedPath(join(dir, 'f'), 'the public key')).toThrow(
      /Root will not trust the public key .*Fix: chown root:root/,
    );
  });
});
