#!/usr/bin/env -S node --min-semi-space-size=2 --max-semi-space-size=2
// The package's bin: a committed file, so `pnpm install` can link it before dist/ is built. Its V8 flags fix
// the young generation at 2 MiB per semi-space (the single binary reads them from this line), measured with
// tools/bench/rss, tools/bench/runner and tools/bench/startup (README "Benchmarks"): V8's default grows it up
// to 16 MiB, which lets RSS grow by ~15 MB for no gain in an I/O-bound run; 1 MiB (V8's starting size, used
// before) took two scavenges to start a 1-check run (~10 ms here), 2 MiB none, and 3 MiB cost 4 MB of peak
// RSS in a run of 200 checks. They leave V8's flag hash as it is, so Node's cached code for its own modules
// stays usable; the optimizing compilers are turned off at run time, when an adapter loads, for that reason
// (src/baseline-compiler.ts).
// (--optimize-for-size, used before, saved nothing measurable and cost ~20 % CPU.)
// Built-ins by process.getBuiltinModule() (Node 22.3+), not static imports: an import makes Node load every
// lazy export of the built-in (esbuild-built-ins.mjs says more; the bundle is built the same way).
const builtIn = (id) => process.getBuiltinModule?.(id) ?? import(id);
const { lstatSync } = await builtIn('node:fs');
const { enableCompileCache } = await builtIn('node:module');
const { homedir } = await builtIn('node:os');
const { dirname, join } = await builtIn('node:path');

/**
 * Root trusts only what root owns: a compile cache is code the agent runs, so as root it is used only where
 * nobody else can write: the directory and every one above it root's and not group- or other-writable (as
 * core's root-trust; a symbolic link on the way turns it off). `sudo -E` keeps a user's HOME, for one.
 */
function onlyRootCanWrite(dir) {
  for (let current = dir; ; current = dirname(current)) {
    try {
      const info = lstatSync(current);
      // A sticky directory above (such as /tmp) keeps others from renaming root's entries in it.
      const stickyAbove = current !== dir && info.isDirectory() && (info.mode & 0o1000) !== 0;
      if (info.uid !== 0 || ((info.mode & 0o022) !== 0 && !stickyAbove)) return false;
    } catch (error) {
      if (error.code !== 'ENOENT') return false;
    }
    if (dirname(current) === current) return true;
  }
}

// V8's compile cache (Node 22.1+) saves parsing and compiling the agent's modules on every run. It lives
// under the user's home (root's for root, never a shared /tmp dir another user could fill); when that is
// read-only (the systemd unit's ProtectHome), unset or, for root, writable by others, the cache is off.
try {
  const cacheDir = join(homedir(), '.cache', 'gather', 'node-compile-cache');
  if (process.getuid?.() !== 0 || onlyRootCanWrite(cacheDir)) enableCompileCache(cacheDir);
} catch {
  // No home directory: run without the cache.
}
// The build bundles the CLI into dist/bundle (bundle.mjs); the adapters are loaded from their packages.
const built = new URL('../dist/bundle/gather-agent.js', import.meta.url);
try {
  await import(built.href);
} catch (error) {
  // A clone before `pnpm build` (the published package ships dist/): say so, not a resolver stack trace.
  if (error?.code !== 'ERR_MODULE_NOT_FOUND' || error.url !== built.href) throw error;
  process.stderr.write('[gather] [agent] gather-agent is not built yet: run "pnpm build" at the root of the clone, then try again.\n');
  process.exitCode = 1;
}
