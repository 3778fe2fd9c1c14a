// The local bundle cache on its own: where a source's cache lives, what a fetch may trust from it, the lock.
import { mkdtempSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LockBusyError } from '@gather/core';
import { afterEach, describe, expect, it } from 'vitest';
import { cacheDirFor, openCache, type BundleCache, type CacheState } from '../src/cache.js';

const roots: string[] = [];
const open: BundleCache[] = [];

afterEach(async () => {
  for (const cache of open.splice(0)) await cache.release();
  for (const root of roots.splice(0)) rmSync(root, { recursive: true, force: true });
});

async function openFresh(root = mkdtempSync(join(tmpdir(), 'gather-s3-cache-')), waitMs = 5000): Promise<BundleCache> {
  if (!roots.includes(root)) roots.push(root);
  const cache = await openCache(root, join(root, 's3-test'), { purpose: 'test', waitMs, signal: new AbortController().signal });
  open.push(cache);
  return cache;
}

function state(file: string, size: number): CacheState {
  return { format: 1, source: 's3://b/p/latest', bundle: { key: 'p/1.tar', sha256: 'a'.repeat(64), size, file } };
}

describe('bundle cache', () => {
  it('gives each endpoint, bucket, prefix and key its own directory, the same one every time', () => {
    const dirs = [
      cacheDirFor('/c', undefined, 'b', { prefix: 'p' }),
      cacheDirFor('/c', 'http://127.0.0.1:9300', 'b', { prefix: 'p' }),
      cacheDirFor('/c', undefined, 'b2', { prefix: 'p' }),
      cacheDirFor('/c', undefined, 'b', { prefix: 'q' }),
      cacheDirFor('/c', undefined, 'b', { key: 'p' }),
    ];
    expect(new Set(dirs).size).toBe(dirs.length);
    expect(cacheDirFor('/c', undefined, 'b', { prefix: 'p' })).toBe(dirs[0]);
    for (const dir of dirs) expect(dir).toMatch(/^\/c\/s3-[0-9a-f]{16}$/);
  });

  it('is private, and sweeps temp files a crashed fetch left an hour ago, not the ones of now', async () => {
    const root = mkdtempSync(join(tmpdir(), 'gather-s3-cache-'));
    const first = await openFresh(root);
    writeFileSync(join(first.dir, '.bundle-old.part'), 'x');
    writeFileSync(join(first.dir, '.bundle-new.part'), 'x');
    const twoHoursAgo = new Date(Date.now() - 2 * 60 * 60 * 1000);
    utimesSync(join(first.dir, '.bundle-old.part'), twoHoursAgo, twoHoursAgo);
    await open.pop()!.release();
    const cache = await openFresh(root);
    expect(statSync(cache.dir).mode & 0o777).toBe(0o700);
    expect(readdirSync(cache.dir).filter((name) => name.endsWith('.part'))).toEqual(['.bundle-new.part']);
  });

  it('trusts a state only when its bundle is there with the size it recorded', async () => {
    const cache = await openFresh();
    expect(await cache.load()).toBeUndefined();
    writeFileSync(join(cache.dir, 'bundle-1.tar'), 'four');
    await cache.commit(state('bundle-1.tar', 4), undefined);
    expect(await cache.load()).toEqual(state('bundle-1.tar', 4));
    await cache.commit(state('bundle-1.tar', 5), undefined);
    expect(await cache.load()).toBeUndefined();
    await cache.commit(state('../bundle-1.tar', 4), undefined);
    expect(await cache.load()).toBeUndefined();
  });

  it('removes the previous bundle when a commit names another file', async () => {
    const cache = await openFresh();
    writeFileSync(join(cache.dir, 'bundle-1.tar'), 'one');
    writeFileSync(join(cache.dir, 'bundle-2.tar'), 'two');
    await cache.commit(state('bundle-2.tar', 3), state('bundle-1.tar', 3));
    expect(readdirSync(cache.dir).filter((name) => name.endsWith('.tar'))).toEqual(['bundle-2.tar']);
  });

  it('lets one fetch at a time use a cache: a second one waits, then is refused', async () => {
    const root = mkdtempSync(join(tmpdir(), 'gather-s3-cache-'));
    await openFresh(root);
    await expect(openFresh(root, 300)).rejects.toBeInstanceOf(LockBusyError);
  });
});
