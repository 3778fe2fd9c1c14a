// The local bundle cache (option cacheDir): one private directory per source, holding the bundle and what
// the next fetch needs to ask S3 "changed?" (state.json: the ETags and what the pointer named). A fetch holds
// the cache's lock from open to release, so two processes sharing a cache never delete each other's bundle
// or state.
import { createHash } from 'node:crypto';
import { lstat, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { acquireLock, ensurePrivateDir, readFileNoFollow, writeFileAtomic, type LockTakeover } from '@gather/core';
import { SCOPE } from './client.js';
import type { FetchTarget } from './options.js';

/** What the cache remembers between runs. */
export interface CacheState {
  format: 1;
  source: string;
  /** Prefix mode: the pointer ETag and what it named. */
  pointer?: { etag: string; version: string; key: string; sha256?: string };
  bundle: CachedBundle;
}

export interface CachedBundle {
  key: string;
  etag?: string;
  sha256: string;
  size: number;
  /** The bundle's file name in the cache directory. */
  file: string;
}

const STATE_FILE = 'state.json';
const CACHE_LOCK = 'cache.lock';
/** Temp files older than this were left by a crashed fetch: removed. */
const STALE_PART_MS = 60 * 60 * 1000;

/** The cache directory of one source: endpoint, bucket and prefix or key decide it. */
export function cacheDirFor(cacheRoot: string, endpoint: string | undefined, bucket: string, target: FetchTarget): string {
  const what = target.prefix !== undefined ? `prefix:${target.prefix}` : `key:${target.key}`;
  const id = createHash('sha256')
    .update(`${endpoint ?? 'aws'}\n${bucket}\n${what}`)
    .digest('hex')
    .slice(0, 16);
  return join(cacheRoot, `s3-${id}`);
}

export interface OpenCacheOptions {
  /** Written into the lock, for the busy message. */
  purpose: string;
  waitMs: number;
  signal: AbortSignal;
  onLockTakeover?: (takeover: LockTakeover) => void;
}

/** An open (locked) cache. */
export interface BundleCache {
  dir: string;
  /** The file name a verified bundle gets in the cache. */
  bundleFile(sha256: string): string;
  /** The state of the last fetch, or undefined when there is none or its bundle is not what was stored. */
  load(): Promise<CacheState | undefined>;
  /** Records `next`, then removes the bundle of `previous` if it is another file. */
  commit(next: CacheState, previous: CacheState | undefined): Promise<void>;
  release(): Promise<void>;
}

/** Creates the directories (real ones, not links planted in their place), takes the lock, sweeps old temp files. */
export async function openCache(cacheRoot: string, dir: string, options: OpenCacheOptions): Promise<BundleCache> {
  await ensurePrivateDir(cacheRoot);
  await ensurePrivateDir(dir);
  const lock = await acquireLock(join(dir, CACHE_LOCK), {
    purpose: options.purpose,
    waitMs: options.waitMs,
    pollMs: 100,
    signal: options.signal,
    busyHint: 'another process is fetching into this cache; give each its own cacheDir or fetch one at a time.',
    scope: SCOPE,
    ...(options.onLockTakeover ? { onTakeover: options.onLockTakeover } : {}),
  });
  try {
    await removeStaleParts(dir);
  } catch (error) {
    await lock.release();
    throw error;
  }
  return {
    dir,
    bundleFile: (sha256) => `bundle-${sha256.slice(0, 16)}.tar`,
    load: () => loadState(dir),
    async commit(next, previous) {
      await writeFileAtomic(join(dir, STATE_FILE), JSON.stringify(next, null, 2) + '\n');
      if (previous && previous.bundle.file !== next.bundle.file) await rm(join(dir, previous.bundle.file), { force: true });
    },
    release: () => lock.release(),
  };
}

async function loadState(dir: string): Promise<CacheState | undefined> {
  try {
    // Nothing in the cache is read through a symbolic link.
    const state = JSON.parse(await readFileNoFollow(join(dir, STATE_FILE))) as CacheState;
    if (state?.format !== 1 || typeof state.bundle?.file !== 'string' || state.bundle.file.includes('/')) return undefined;
    const info = await lstat(join(dir, state.bundle.file));
    // A cached bundle that is not the size we stored is not trusted: fetch unconditionally.
    if (!info.isFile() || info.size !== state.bundle.size) return undefined;
    return state;
  } catch {
    return undefined;
  }
}

async function removeStaleParts(dir: string): Promise<void> {
  const now = Date.now();
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    if (!name.endsWith('.part') && !name.endsWith('.tmp')) continue;
    const info = await lstat(join(dir, name)).catch(() => undefined);
    if (info && now - info.mtimeMs > STALE_PART_MS) await rm(join(dir, name), { force: true });
  }
}
