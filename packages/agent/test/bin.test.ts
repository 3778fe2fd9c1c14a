import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from './_helpers.js';

// The package's bin (bin/gather-agent.js): V8's compile cache under the home directory, which root uses only
// where nobody else can write; and what the build bundled (dist/bundle): the CLI, one module per adapter.
const BIN = resolve(__dirname, '../bin/gather-agent.js');
const isRoot = process.getuid?.() === 0;

function runVersion(home: string): string {
  const env: NodeJS.ProcessEnv = { ...process.env, HOME: home };
  delete env.NODE_DISABLE_COMPILE_CACHE; // set even when empty, it turns the cache off
  return execFileSync(BIN, ['version'], { env, encoding: 'utf8' });
}

const cacheDir = (home: string) => join(home, '.cache', 'gather', 'node-compile-cache');

describe('gather-agent bin', () => {
  it.runIf(isRoot)("as root, keeps a compile cache in root's own home", () => {
    const home = tempDir('gather-bin-home-'); // 0700, root's, below the sticky /tmp
    try {
      expect(runVersion(home)).toMatch(/^\d+\.\d+\.\d+/);
      expect(readdirSync(cacheDir(home)).length).toBeGreaterThan(0);
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });

  it.runIf(isRoot)('as root, loads no compile cache from a home others can write (sudo -E with a user HOME)', () => {
    const home = tempDir('gather-bin-home-');
    try {
      chmodSync(home, 0o777);
      expect(runVersion(home)).toMatch(/^\d+\.\d+\.\d+/);
      expect(existsSync(cacheDir(home))).toBe(false);
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });

  it('in a clone not yet built, says to run pnpm build: exit 1, no resolver stack trace', () => {
    const clone = tempDir('gather-bin-unbuilt-'); // the bin where the package has no dist/ yet
    try {
      mkdirSync(join(clone, 'bin'));
      copyFileSync(BIN, join(clone, 'bin', 'gather-agent.js'));
      const result = spawnSync(process.execPath, [join(clone, 'bin', 'gather-agent.js'), 'version'], { encoding: 'utf8' });
      expect(result.stderr).toBe(
        '[gather] [agent] gather-agent is not built yet: run "pnpm build" at the root of the clone, then try again.\n',
      );
      expect(result.status).toBe(1);
    } finally {
      rmSync(clone, { recursive: true, force: true });
    }
  });

  it('runs the bundle the build made (the CLI); the adapters stay in their own packages, loaded when selected', () => {
    expect(existsSync(resolve(__dirname, '../dist/bundle/gather-agent.js'))).toBe(true);
    const bundle = readFileSync(resolve(__dirname, '../dist/bundle/gather-agent.js'), 'utf8');
    // Imported by name at run time, not inlined: a user's installed adapter is the one that runs.
    expect(bundle).toMatch(/import\(["']@gather\/exporter-es["']\)|["']@gather\/exporter-es["']/);
    expect(bundle).not.toContain('items.*.error.reason'); // the exporter's bulk request is not in the bundle
    const bin = readFileSync(resolve(__dirname, '../bin/gather-agent.js'), 'utf8');
    expect(bin).not.toContain('gather.bundledAdapters');
  });

  it("takes Node's built-ins without ES module facades, so their lazy parts stay unloaded", () => {
    const bundle = readFileSync(resolve(__dirname, '../dist/bundle/gather-agent.js'), 'utf8');
    // The banner's createRequire is the one static import of a built-in left (the fallback before Node 22.3).
    expect(bundle.match(/\bfrom\s*["']node:[^"']+["']/g)).toEqual(["from 'node:module'"]);
    const dir = tempDir('gather-bin-modules-');
    try {
      const preload = join(dir, 'loaded.cjs');
      writeFileSync(
        preload,
        `process.on('exit', () => require('fs').writeFileSync(${JSON.stringify(join(dir, 'loaded.txt'))}, process.moduleLoadList.join('\\n')));`,
      );
      execFileSync(process.execPath, ['--require', preload, BIN, 'version'], { encoding: 'utf8' });
      const loaded = readFileSync(join(dir, 'loaded.txt'), 'utf8').split('\n');
      expect(loaded).toContain('NativeModule crypto'); // what the agent uses is there...
      // ...but not what only a facade reads: node:util's diff and worker_threads, node:crypto's webcrypto.
      for (const lazy of ['internal/util/diff', 'worker_threads', 'internal/crypto/webcrypto']) {
        expect(loaded).not.toContain(`NativeModule ${lazy}`);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
