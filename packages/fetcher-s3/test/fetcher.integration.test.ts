// The S3 fetcher against the real S3 server of tools/services (S3Proxy, SigV4), with the SDK's default
// checksum settings unless a test says otherwise. Faults (503, early close, silence) are injected by a small
// proxy in front of the real server; nothing here mocks S3.
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fetcherContract } from '@gather/core/testing';
import { createS3Fetcher, type S3FetcherOptions } from '../src/index.js';
import { publishBundle, rollbackBundle, serializePointer } from '../src/publish/index.js';
import {
  FAST_RETRY,
  bundle,
  closedPort,
  connection,
  putObject,
  sha256,
  startProxy,
  s3TestScope,
  tempDir,
  type FaultProxy,
} from './_helpers.js';

const { env, bucket, admin, proxies, newPrefix } = s3TestScope();

async function proxy(...args: Parameters<typeof startProxy> extends [string, ...infer Rest] ? Rest : never): Promise<FaultProxy> {
  const started = await startProxy(env.endpoint, ...args);
  proxies.push(started);
  return started;
}

function fetcher(options: Partial<S3FetcherOptions> & ({ prefix: string } | { key: string }), endpoint = env.endpoint) {
  return createS3Fetcher({ ...connection(env, endpoint), bucket, retry: FAST_RETRY, ...options });
}

async function publish(prefix: string, bytes: Buffer) {
  return publishBundle({ ...connection(env), bucket, prefix, bundle: bytes });
}

fetcherContract('s3', {
  async withBundle(bytes) {
    const prefix = newPrefix('contract');
    await putObject(admin, bucket, `${prefix}/fixed.tar`, bytes);
    return fetcher({ key: `${prefix}/fixed.tar` });
  },
  missing() {
    return fetcher({ prefix: newPrefix('contract-missing') });
  },
});

describe('fetching a published bundle (prefix mode follows <prefix>/latest)', () => {
  it('without a cache: downloads pointer + bundle into dir, exact bytes, bytes counted', async () => {
    const prefix = newPrefix('plain');
    const v1 = bundle('1.0.0', 20_000);
    await publish(prefix, v1);
    const dir = tempDir();
    const f = fetcher({ prefix });
    const result = await f.fetch({ dir });
    await f.close();
    expect(result.path).toBe(join(dir, 'bundle.tar'));
    expect(sha256(readFileSync(result.path))).toBe(sha256(v1));
    expect(result).toMatchObject({ unchanged: false, requests: 2, version: '1.0.0', key: `${prefix}/1.0.0.tar` });
    // Pointer body (a small JSON) plus the whole bundle.
    expect(result.bytesTransferred).toBeGreaterThan(v1.length);
    expect(result.bytesTransferred).toBeLessThan(v1.length + 1024);
    expect(result.source).toBe(`s3://${bucket}/${prefix}/1.0.0.tar at ${env.endpoint}`);
    expect(result.source).not.toContain(env.secretAccessKey);
    expect(readdirSync(dir)).toEqual(['bundle.tar']);
  });

  it('unchanged: a later fetch is one conditional request answered 304, with zero body bytes', async () => {
    const prefix = newPrefix('unchanged');
    const v1 = bundle('1.0.0', 50_000);
    await publish(prefix, v1);
    const cacheDir = tempDir();
    // A proxy in front of the real server sees every request and every body byte.
    const counting = await proxy();
    const first = await fetcher({ prefix, cacheDir }, counting.url).fetch({ dir: tempDir() });
    expect(first.unchanged).toBe(false);
    expect(first.path.startsWith(cacheDir)).toBe(true);
    const before = counting.requests.length;

    // A new fetcher with the same cacheDir: a new agent process 15 minutes later.
    const f = fetcher({ prefix, cacheDir }, counting.url);
    const second = await f.fetch({ dir: tempDir() });
    await f.close();
    expect(second).toMatchObject({ unchanged: true, bytesTransferred: 0, requests: 1, path: first.path });
    expect(sha256(readFileSync(second.path))).toBe(sha256(v1));
    const seen = counting.requests.slice(before);
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ method: 'GET', status: 304, bodyBytes: 0 });
    expect(seen[0]!.url).toContain(`${prefix}/latest`);
    expect(seen[0]!.headers['if-none-match']).toBe(
      JSON.parse(readFileSync(join(cacheDir, first.path.split('/').at(-2)!, 'state.json'), 'utf8')).pointer.etag,
    );
  });

  it('changed: a new version is downloaded whole and replaces the cached one', async () => {
    const prefix = newPrefix('changed');
    const v1 = bundle('1.0.0');
    const v2 = bundle('2.0.0', 30_000);
    await publish(prefix, v1);
    const cacheDir = tempDir();
    const f = fetcher({ prefix, cacheDir });
    const first = await f.fetch({ dir: tempDir() });
    await publish(prefix, v2);
    const second = await f.fetch({ dir: tempDir() });
    await f.close();
    expect(second).toMatchObject({ unchanged: false, version: '2.0.0', requests: 2 });
    expect(second.bytesTransferred).toBeGreaterThan(v2.length);
    expect(sha256(readFileSync(second.path))).toBe(sha256(v2));
    expect(existsSync(first.path)).toBe(false);
    const files = readdirSync(join(second.path, '..')).sort();
    expect(files).toEqual([second.path.split('/').pop(), 'state.json'].sort());
  });

  it('follows the pointer when it is moved back and forward again', async () => {
    const prefix = newPrefix('rollback');
    const v1 = bundle('1.0.0', 4096, 1);
    const v2 = bundle('2.0.0', 4096, 2);
    await publish(prefix, v1);
    await publish(prefix, v2);
    const cacheDir = tempDir();
    const f = fetcher({ prefix, cacheDir });
    expect(sha256(readFileSync((await f.fetch({ dir: tempDir() })).path))).toBe(sha256(v2));

    // Moved back by hand (as someone with write access to the bucket could): the fetcher follows, the
    // agent's sequence check is what refuses the older bundle.
    await putObject(admin, bucket, `${prefix}/latest`, serializePointer({ format: 1, version: '1.0.0', key: `${prefix}/1.0.0.tar` }));
    const rolled = await f.fetch({ dir: tempDir() });
    expect(rolled).toMatchObject({ unchanged: false, version: '1.0.0' });
    expect(sha256(readFileSync(rolled.path))).toBe(sha256(v1));

    await rollbackBundle({ ...connection(env), bucket, prefix, to: '2.0.0' });
    const forward = await f.fetch({ dir: tempDir() });
    expect(sha256(readFileSync(forward.path))).toBe(sha256(v2));
    expect((await f.fetch({ dir: tempDir() })).unchanged).toBe(true);
    await f.close();
  });

  it('a rewritten pointer that still names the cached bundle costs no second request', async () => {
    const prefix = newPrefix('same-target');
    await publish(prefix, bundle('1.0.0'));
    const cacheDir = tempDir();
    const f = fetcher({ prefix, cacheDir });
    await f.fetch({ dir: tempDir() });
    // Hand-written pointer (plain text version): a different ETag, the same bundle.
    await putObject(admin, bucket, `${prefix}/latest`, '1.0.0\n');
    const result = await f.fetch({ dir: tempDir() });
    expect(result).toMatchObject({ unchanged: true, requests: 1, bytesTransferred: 6, version: '1.0.0' });
    expect((await f.fetch({ dir: tempDir() })).requests).toBe(1);
    await f.close();
  });

  it('works with checksums "when-required" too (the setting for S3-compatible servers)', async () => {
    const prefix = newPrefix('when-required');
    const v1 = bundle('1.0.0', 9 * 1024 * 1024);
    await publishBundle({ ...connection(env), bucket, prefix, bundle: v1, checksums: 'when-required' });
    const f = fetcher({ prefix, checksums: 'when-required' });
    const result = await f.fetch({ dir: tempDir() });
    await f.close();
    expect(sha256(readFileSync(result.path))).toBe(sha256(v1));
  });
});

describe('a bundle arrives whole or not at all', () => {
  it('a download cut short by the server leaves no bundle in dir, after bounded retries', async () => {
    const prefix = newPrefix('truncated');
    const v1 = bundle('1.0.0', 300_000);
    await publish(prefix, v1);
    const cutting = await proxy((req) => (req.url?.includes('.tar') ? { kind: 'truncate', afterBytes: 64 * 1024 } : { kind: 'forward' }));
    const dir = tempDir();
    const f = fetcher({ prefix }, cutting.url);
    const error = await f.fetch({ dir }).catch((e: unknown) => e);
    await f.close();
    expect(error).toMatchObject({ name: 'FetchError', code: 'GATHER_FETCH' });
    expect((error as Error).message).toContain(`s3://${bucket}/${prefix}/1.0.0.tar`);
    expect((error as Error).message).toMatch(/after 3 attempts/);
    expect(readdirSync(dir)).toEqual([]);
    const bundleGets = cutting.requests.filter((r) => r.url.includes('.tar'));
    expect(bundleGets).toHaveLength(3);
    expect(bundleGets.every((r) => r.status === 200 && r.bodyBytes === 64 * 1024)).toBe(true);
  });

  it('a cut-short update keeps the previously cached bundle and cache state untouched', async () => {
    const prefix = newPrefix('truncated-cache');
    const v1 = bundle('1.0.0', 100_000);
    await publish(prefix, v1);
    const cacheDir = tempDir();
    const good = await fetcher({ prefix, cacheDir }).fetch({ dir: tempDir() });
    const cacheFiles = readdirSync(join(good.path, '..')).sort();
    const state = readFileSync(join(good.path, '..', 'state.json'), 'utf8');

    await publish(prefix, bundle('2.0.0', 300_000));
    const cutting = await proxy((req) => (req.url?.includes('.tar') ? { kind: 'truncate', afterBytes: 10_000 } : { kind: 'forward' }));
    await expect(fetcher({ prefix, cacheDir }, cutting.url).fetch({ dir: tempDir() })).rejects.toMatchObject({ name: 'FetchError' });
    expect(sha256(readFileSync(good.path))).toBe(sha256(v1));
    expect(readdirSync(join(good.path, '..')).sort()).toEqual(cacheFiles);
    expect(readFileSync(join(good.path, '..', 'state.json'), 'utf8')).toBe(state);

    // Once the network is fine again, the update arrives.
    const later = await fetcher({ prefix, cacheDir }).fetch({ dir: tempDir() });
    expect(later).toMatchObject({ unchanged: false, version: '2.0.0' });
  });

  it('an object whose bytes do not match its published sha256 is discarded, not retried', async () => {
    const prefix = newPrefix('corrupt');
    const v1 = bundle('1.0.0');
    await putObject(admin, bucket, `${prefix}/fixed.tar`, v1, { sha256: '0'.repeat(64) });
    const dir = tempDir();
    const f = fetcher({ key: `${prefix}/fixed.tar` });
    const error = await f.fetch({ dir }).catch((e: unknown) => e);
    await f.close();
    expect((error as Error).message).toMatch(/does not match the sha256 in its object metadata/);
    expect(readdirSync(dir)).toEqual([]);
  });
});

describe('transient failures are retried with backoff, bounded', () => {
  it('a 503 SlowDown is retried and the fetch succeeds', async () => {
    const prefix = newPrefix('retry-503');
    const v1 = bundle('1.0.0');
    await publish(prefix, v1);
    const flaky = await proxy((_req, index) => (index === 0 ? { kind: 'status', status: 503, code: 'SlowDown' } : { kind: 'forward' }));
    const retries: string[] = [];
    const f = fetcher({ prefix, onRetry: (info) => retries.push(`${info.key}#${info.attempt}`) }, flaky.url);
    const result = await f.fetch({ dir: tempDir() });
    await f.close();
    expect(sha256(readFileSync(result.path))).toBe(sha256(v1));
    expect(flaky.requests.map((r) => r.status)).toEqual([503, 200, 200]);
    expect(flaky.requests[0]!.url).toBe(flaky.requests[1]!.url);
    expect(result.requests).toBe(3);
    expect(retries).toEqual([`${prefix}/latest#1`]);
  });

  it('a server that keeps failing gets exactly `attempts` requests, then a clear error', async () => {
    const prefix = newPrefix('retry-exhausted');
    const down = await proxy(() => ({ kind: 'status', status: 503, code: 'ServiceUnavailable' }));
    const f = fetcher({ prefix }, down.url);
    const error = (await f.fetch({ dir: tempDir() }).catch((e: unknown) => e)) as Error;
    await f.close();
    expect(down.requests).toHaveLength(3);
    expect(error.message).toContain(`S3 kept failing for s3://${bucket}/${prefix}/latest`);
    expect(error.message).toContain('HTTP 503 ServiceUnavailable after 3 attempts');
  });
});

describe('errors name the bucket and key and say what to do', () => {
  it('no published bundle (missing pointer): says how to publish', async () => {
    const prefix = newPrefix('nothing');
    const error = (await fetcher({ prefix })
      .fetch({ dir: tempDir() })
      .catch((e: unknown) => e)) as Error;
    expect(error).toMatchObject({ name: 'FetchError' });
    expect(error.message).toContain(`No object s3://${bucket}/${prefix}/latest`);
    expect(error.message).toContain(`gather-bundle publish --bundle <file> --bucket ${bucket} --prefix ${prefix}`);
  });

  it('missing key (key mode), answered at once (a 404 is not retried)', async () => {
    const key = `${newPrefix('nokey')}/absent.tar`;
    const counting = await proxy();
    const error = (await fetcher({ key }, counting.url)
      .fetch({ dir: tempDir() })
      .catch((e: unknown) => e)) as Error;
    expect(error.message).toContain(`No object s3://${bucket}/${key}`);
    expect(error.message).toContain('Check the key');
    expect(counting.requests).toHaveLength(1);
  });

  it('the pointer names a version whose bundle is gone: says how to roll back', async () => {
    const prefix = newPrefix('dangling');
    await putObject(admin, bucket, `${prefix}/latest`, '9.9.9');
    const error = (await fetcher({ prefix })
      .fetch({ dir: tempDir() })
      .catch((e: unknown) => e)) as Error;
    expect(error.message).toContain(`No object s3://${bucket}/${prefix}/9.9.9.tar`);
    expect(error.message).toContain(`gather-bundle rollback --bucket ${bucket} --prefix ${prefix} --to <version>`);
  });

  it('no such bucket', async () => {
    const f = createS3Fetcher({ ...connection(env), bucket: 'gather-no-such-bucket-x1', key: 'a.tar', retry: FAST_RETRY });
    const error = (await f.fetch({ dir: tempDir() }).catch((e: unknown) => e)) as Error;
    expect(error.message).toContain('Bucket "gather-no-such-bucket-x1" does not exist');
    expect(error.message).toContain('GATHER_S3_BUCKET');
  });

  it('an unknown access key: access denied, names the credentials source, never the secret', async () => {
    const secret = 'wrong-secret-d41d8cd98f00';
    const key = `${newPrefix('denied')}/b.tar`;
    const f = createS3Fetcher({
      endpoint: env.endpoint,
      credentials: { accessKeyId: 'nobody-here', secretAccessKey: secret },
      bucket,
      key,
      retry: FAST_RETRY,
    });
    const error = (await f.fetch({ dir: tempDir() }).catch((e: unknown) => e)) as Error;
    expect(error).toMatchObject({ name: 'FetchError' });
    expect(error.message).toContain(
      `Access denied to s3://${bucket}/${key} (S3 said InvalidAccessKeyId) with credentials from credentials passed in options`,
    );
    for (const text of [error.message, error.stack ?? '', String((error.cause as Error)?.message)]) expect(text).not.toContain(secret);
  });

  it('a wrong secret: SignatureDoesNotMatch, never the secret', async () => {
    const secret = 'wrong-secret-9e107d9d372bb';
    const key = `${newPrefix('badsig')}/b.tar`;
    const f = createS3Fetcher({
      endpoint: env.endpoint,
      credentials: { accessKeyId: env.accessKeyId, secretAccessKey: secret },
      bucket,
      key,
    });
    const error = (await f.fetch({ dir: tempDir() }).catch((e: unknown) => e)) as Error;
    expect(error.message).toContain('(S3 said SignatureDoesNotMatch)');
    expect(error.message).toContain('secret access key does not match');
    expect(error.message).not.toContain(secret);
    expect(JSON.stringify({ message: error.message, stack: error.stack })).not.toContain(secret);
  });

  it('credentials from the SDK default chain (AWS_* env): access denied names that source', async () => {
    const saved = { id: process.env.AWS_ACCESS_KEY_ID, secret: process.env.AWS_SECRET_ACCESS_KEY };
    const secret = 'env-secret-that-is-wrong-0042';
    process.env.AWS_ACCESS_KEY_ID = env.accessKeyId;
    process.env.AWS_SECRET_ACCESS_KEY = secret;
    try {
      const f = createS3Fetcher({ endpoint: env.endpoint, bucket, key: `${newPrefix('envcreds')}/b.tar` });
      const error = (await f.fetch({ dir: tempDir() }).catch((e: unknown) => e)) as Error;
      expect(error.message).toContain('with credentials from the AWS SDK default chain (here: environment variables AWS_ACCESS_KEY_ID');
      expect(error.message).not.toContain(secret);
    } finally {
      if (saved.id === undefined) delete process.env.AWS_ACCESS_KEY_ID;
      else process.env.AWS_ACCESS_KEY_ID = saved.id;
      if (saved.secret === undefined) delete process.env.AWS_SECRET_ACCESS_KEY;
      else process.env.AWS_SECRET_ACCESS_KEY = saved.secret;
    }
  });

  it('endpoint unreachable (connection refused): retried, then says to check the endpoint', async () => {
    const endpoint = `http://127.0.0.1:${await closedPort()}`;
    const f = createS3Fetcher({ ...connection(env, endpoint), bucket, key: 'x.tar', retry: FAST_RETRY });
    const error = (await f.fetch({ dir: tempDir() }).catch((e: unknown) => e)) as Error;
    expect(error.message).toContain(
      `Cannot reach the S3 endpoint ${endpoint} (ECONNREFUSED) to fetch s3://${bucket}/x.tar after 3 attempts`,
    );
    expect(error.message).toContain('GATHER_S3_ENDPOINT');
  });

  it('a server that never answers: times out after timeoutMs', async () => {
    const silent = await proxy(() => ({ kind: 'hang' }));
    const f = fetcher({ key: 'x.tar', timeoutMs: 600 }, silent.url);
    const started = Date.now();
    const error = (await f.fetch({ dir: tempDir() }).catch((e: unknown) => e)) as Error;
    await f.close();
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(error).toMatchObject({ name: 'FetchError' });
    expect(error.message).toContain(`Timed out after 600 ms fetching s3://${bucket}/x.tar`);
  });

  it('an aborted run stops the fetch with an AbortedError', async () => {
    const silent = await proxy(() => ({ kind: 'hang' }));
    const controller = new AbortController();
    const pending = fetcher({ key: 'x.tar' }, silent.url).fetch({ dir: tempDir(), signal: controller.signal });
    setTimeout(() => controller.abort(), 100);
    await expect(pending).rejects.toMatchObject({ name: 'AbortedError' });
  });
});

describe('the cache directory', () => {
  it('is private (0700) and the returned bundle is inside it', async () => {
    const prefix = newPrefix('perm');
    await publish(prefix, bundle('1.0.0'));
    const cacheDir = join(tempDir(), 'cache');
    const result = await fetcher({ prefix, cacheDir }).fetch({ dir: tempDir() });
    expect(statSync(join(result.path, '..')).mode & 0o777).toBe(0o700);
    expect(statSync(cacheDir).mode & 0o777).toBe(0o700);
    expect(result.path.startsWith(cacheDir)).toBe(true);
  });

  it('a cached bundle of the wrong size is not trusted: the next fetch downloads again', async () => {
    const prefix = newPrefix('tampered-cache');
    const v1 = bundle('1.0.0');
    await publish(prefix, v1);
    const cacheDir = tempDir();
    const first = await fetcher({ prefix, cacheDir }).fetch({ dir: tempDir() });
    writeFileSync(first.path, 'short');
    const again = await fetcher({ prefix, cacheDir }).fetch({ dir: tempDir() });
    expect(again.unchanged).toBe(false);
    expect(sha256(readFileSync(again.path))).toBe(sha256(v1));
  });
});

describe('the cache lock and planted links (root writes the cache)', () => {
  it('takes over and reports a cache lock left by a crash whose pid was reused (pid 1, other start time)', async () => {
    const prefix = newPrefix('stale-lock');
    await publish(prefix, bundle('1.0.0'));
    const cacheDir = tempDir();
    const first = await fetcher({ prefix, cacheDir }).fetch({ dir: tempDir() });
    const entryDir = join(cacheDir, first.path.split('/').at(-2)!);
    expect(existsSync(join(entryDir, 'cache.lock'))).toBe(false); // released after the fetch
    writeFileSync(
      join(entryDir, 'cache.lock'),
      JSON.stringify({ pid: 1, start: '0', purpose: 'fetch', since: '2020-01-01T00:00:00Z', token: 'x' }),
    );
    const takeovers: unknown[] = [];
    const f = fetcher({ prefix, cacheDir, timeoutMs: 5000, onLockTakeover: (t) => takeovers.push(t) });
    const again = await f.fetch({ dir: tempDir() });
    await f.close();
    expect(again.unchanged).toBe(true);
    expect(takeovers).toEqual([expect.objectContaining({ reason: expect.stringMatching(/pid 1 now belongs to another process/) })]);
  });

  it('never writes through a symbolic link planted in the cache: the victim is untouched', async () => {
    const prefix = newPrefix('planted');
    await publish(prefix, bundle('1.0.0'));
    const victimDir = tempDir();
    const victim = join(victimDir, 'state.json');
    writeFileSync(victim, 'precious\n');
    // The entry's name is a hash of the source: learn it from a first cache, plant it in a second.
    const probe = tempDir();
    const entry = (await fetcher({ prefix, cacheDir: probe }).fetch({ dir: tempDir() })).path.split('/').at(-2)!;

    const linkedDir = tempDir();
    symlinkSync(victimDir, join(linkedDir, entry));
    await expect(fetcher({ prefix, cacheDir: linkedDir }).fetch({ dir: tempDir() })).rejects.toThrow(
      /is a symbolic link.*nothing was written through it/,
    );

    const linkedFiles = tempDir();
    mkdirSync(join(linkedFiles, entry), { mode: 0o700 });
    for (const name of ['state.json', 'cache.lock']) symlinkSync(victim, join(linkedFiles, entry, name));
    const result = await fetcher({ prefix, cacheDir: linkedFiles }).fetch({ dir: tempDir() });
    expect(result.unchanged).toBe(false);
    expect(lstatSync(join(linkedFiles, entry, 'state.json')).isFile()).toBe(true); // the link was replaced, not followed
    expect(readFileSync(victim, 'utf8')).toBe('precious\n');
    expect(readdirSync(victimDir)).toEqual(['state.json']);
  });
});
