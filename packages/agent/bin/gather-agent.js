#!/usr/bin/env -S node --max-semi-space-size=1 --optimize-for-size
// The package's bin: a committed file, so `pnpm install` can link it before dist/ is built. Its flags keep
// the agent's RSS low on the user's VM (see src/cli.ts).
import { enableCompileCache } from 'node:module';
import { homedir } from 'node:os';
import { join } from 'node:path';

// V8's compile cache (Node 22.1+) saves parsing and compiling the agent's modules on every run. It lives
// under the user's home (root's for root, never a shared /tmp dir another user could fill); when that is
// read-only (the systemd unit's ProtectHome) or unset, the cache is simply off.
try {
  enableCompileCache(join(homedir(), '.cache', 'gather', 'node-compile-cache'));
} catch {
  // No home directory: run without the cache.
}
await import('../dist/cli.js');
