/**
 * The S3 fetcher. Thousands of agents poll the same bundle, so the common case (nothing changed) costs one
 * conditional GET answered by a 304 with no body:
 *
 *   prefix mode (follows <prefix>/latest)      key mode (one fixed object)
 *   unchanged:  1 request (pointer: 304)        1 request (304)
 *   changed:    2 requests (pointer + bundle)   1 request
 *   no cache:   2 requests, always downloads    1 request, always downloads
 *
 * A download streams into a temp file next to the target, is checked (byte count, sha256 from the pointer
 * and the object metadata, the MD5 ETag or the SDK checksum when the server provides them) and only then
 * renamed into place, so a bundle is there whole or not at all.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { lstat, open, readdir, rename, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { GetObjectCommand, type GetObjectCommandOutput, type S3Client } from '@aws-sdk/client-s3';
import {
  AbortedError,
  acquireLock,
  ConfigError,
  DURATION_RANGES,
  describeRange,
  durationProblem,
  ensurePrivateDir,
  FetchError,
  isGatherError,
  isHostResourceError,
  LockBusyError,
  MAX_BUNDLE_BYTES,
  READ_NO_FOLLOW,
  readFileNoFollow,
  redactText,
  writeFileAtomic,
  type DurationRange,
  type FetchOptions,
  type FetchResult,
  type Fetcher,
  type Lock,
  type LockTakeover,
  UnsafeDirectoryError,
} from '@gather/core';
import {
  SCOPE,
  createS3Client,
  describeCredentials,
  describeEndpoint,
  s3Url,
  secretsOf,
  validateConnection,
  type S3ConnectionOptions,
} from './_client.js';
import {
  IntegrityError,
  TruncatedBodyError,
  describeS3Error,
  isNotModified,
  isTransient,
  type ErrorContext,
} from './_errors.js';
import {
  MAX_POINTER_BYTES,
  SHA256_METADATA,
  normalizePrefix,
  parsePointer,
  pointerKey,
  type BundlePointer,
} from './_layout.js';
import { retryPolicy, withRetry, type RetryOptions, type RetryPolicy } from './_retry.js';

export interface S3FetcherOptions extends S3ConnectionOptions {
  /** The bucket. Required. */
  bucket: string;
  /**
   * The prefix bundles are published under (`gather-bundle publish --prefix`): the fetcher reads the
   * pointer `<prefix>/latest` and fetches the bundle it names. Exactly one of `prefix` and `key`.
   */
  prefix?: string;
  /** The exact key of one bundle object (no pointer). Exactly one of `prefix` and `key`. */
  key?: string;
  /**
   * A directory kept between runs (created with mode 0700). With it, fetches are conditional (ETag) and the
   * bundle lives here (the returned path points into it). Without it every fetch downloads into `dir`.
   */
  cacheDir?: string;
  /** Limit for one whole fetch, retries included, ms. Default 60000. */
  timeoutMs?: number;
  /** Retries of transient failures (5xx, throttling, connection reset/refused, truncated body). Default 3 attempts, 200 ms base, full jitter. */
  retry?: RetryOptions;
  /**
   * Compare a plain MD5 ETag with the MD5 of the downloaded bytes (skipped for multipart and KMS/SSE-C
   * objects, whose ETags are not MD5s). Default true; turn off for servers whose ETags are not MD5s.
   */
  verifyEtag?: boolean;
  /** Called before each retry, e.g. to log it. The error message never contains credentials. */
  onRetry?: (info: { key: string; attempt: number; delayMs: number; error: string }) => void;
  /** Called when a stale cache lock (a crashed process's, one from before a reboot) is taken over, e.g. to log it. */
  onLockTakeover?: (takeover: LockTakeover) => void;
}

/** What the S3 fetcher returns: core's FetchResult plus details for logs and tests. */
export interface S3FetchResult extends FetchResult {
  /** HTTP requests made by this fetch, retries included. */
  requests: number;
  /** The bundle version named by the pointer (prefix mode). */
  version?: string;
  /** The bundle object key. */
  key: string;
  /** sha256 (hex) of the bundle file. */
  sha256: string;
}

export interface S3Fetcher extends Fetcher {
  fetch(options: FetchOptions): Promise<S3FetchResult>;
  close(): Promise<void>;
}

/** What the cache remembers between runs (state.json next to the cached bundle). */
interface CacheState {
  format: 1;
  source: string;
  /** Prefix mode: the pointer ETag and what it named. */
  pointer?: { etag: string; version: string; key: string; sha256?: string };
  bundle: { key: string; etag?: string; sha256: string; size: number; file: string };
}

const STATE_FILE = 'state.json';
/** Held during a fetch: two processes sharing a cache never delete each other's bundle or state. */
const CACHE_LOCK = 'cache.lock';
const STALE_PART_MS = 60 * 60 * 1000;

interface Downloaded {
  path: string;
  etag: string | undefined;
  sha256: string;
  size: number;
  bytes: number;
}

function validateOptions(options: S3FetcherOptions): void {
  if (!options?.bucket) throw new ConfigError('Missing option "bucket". Pass it or set GATHER_S3_BUCKET.', { scope: SCOPE });
  const hasKey = options.key !== undefined && options.key !== '';
  const hasPrefix = options.prefix !== undefined && options.prefix !== '';
  if (hasKey === hasPrefix) {
    throw new ConfigError(
      hasKey
        ? 'Pass either option "prefix" (follow <prefix>/latest) or option "key" (one fixed object), not both.'
        : 'Missing option "prefix". Pass the prefix bundles are published under (the fetcher follows <prefix>/latest) ' +
            'or "key" for one fixed object; or set GATHER_S3_PREFIX.',
      { scope: SCOPE },
    );
  }
  // Delays share core's ranges (one table for every duration gather takes): none overflows a Node timer.
  const delays: Array<[string, number | undefined, DurationRange]> = [
    ['timeoutMs', options.timeoutMs, DURATION_RANGES.requestTimeoutMs],
    ['retry.baseDelayMs', options.retry?.baseDelayMs, DURATION_RANGES.retryBaseDelayMs],
    ['retry.maxDelayMs', options.retry?.maxDelayMs, DURATION_RANGES.retryMaxDelayMs],
  ];
  for (const [name, value, range] of delays) {
    if (value !== undefined && durationProblem(value, range)) {
      throw new ConfigError(`Invalid option "${name}" ${value}: use ${describeRange(range)}.`, { scope: SCOPE });
    }
  }
  validateConnection(options);
}

async function readSmallBody(body: Readable, limit: number, signal: AbortSignal): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    signal.throwIfAborted();
    size += (chunk as Buffer).length;
    if (size > limit) {
      body.destroy();
      throw new IntegrityError(`the object is over ${limit} bytes, too big for a pointer`);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** Creates a fetcher for bundles in S3 (or an S3-compatible server). */
export function createS3Fetcher(options: S3FetcherOptions): S3Fetcher {
  validateOptions(options);
  const bucket = options.bucket;
  const prefix = options.prefix ? normalizePrefix(options.prefix) : undefined;
  const fixedKey = prefix === undefined ? options.key! : undefined;
  const timeoutMs = options.timeoutMs ?? 60_000;
  const policy: RetryPolicy = retryPolicy(options.retry);
  const endpoint = describeEndpoint(options);
  const credentialsSource = describeCredentials(options);
  const secrets = secretsOf(options);
  const verifyEtag = options.verifyEtag ?? true;
  const sourceName = prefix !== undefined ? s3Url(bucket, pointerKey(prefix)) : s3Url(bucket, fixedKey!);
  const cacheRoot = options.cacheDir ? resolve(options.cacheDir) : undefined;
  const cacheDir = cacheRoot
    ? join(
        cacheRoot,
        's3-' +
          createHash('sha256')
            .update(`${options.endpoint ?? 'aws'}\n${bucket}\n${prefix !== undefined ? `prefix:${prefix}` : `key:${fixedKey}`}`)
            .digest('hex')
            .slice(0, 16),
      )
    : undefined;
  let client: S3Client | undefined;
  const getClient = () => (client ??= createS3Client(options, { timeoutMs }));
  const at = options.endpoint ? ` at ${endpoint}` : '';

  const context = (key: string, notFoundHint?: string): ErrorContext => ({
    action: 'fetch',
    bucket,
    key,
    endpoint,
    credentialsSource,
    secrets,
    ...(notFoundHint ? { notFoundHint } : {}),
  });

  async function loadState(): Promise<CacheState | undefined> {
    if (!cacheDir) return undefined;
    try {
      // Nothing in the cache is read through a symbolic link.
      const state = JSON.parse(await readFileNoFollow(join(cacheDir, STATE_FILE))) as CacheState;
      if (state?.format !== 1 || typeof state.bundle?.file !== 'string' || state.bundle.file.includes('/')) return undefined;
      const info = await lstat(join(cacheDir, state.bundle.file));
      // A cached bundle that is not the size we stored is not trusted: fetch unconditionally.
      if (!info.isFile() || info.size !== state.bundle.size) return undefined;
      return state;
    } catch {
      return undefined;
    }
  }

  async function saveState(state: CacheState): Promise<void> {
    await writeFileAtomic(join(cacheDir!, STATE_FILE), JSON.stringify(state, null, 2) + '\n');
  }

  async function removeStaleParts(dir: string): Promise<void> {
    const now = Date.now();
    for (const name of await readdir(dir).catch(() => [] as string[])) {
      if (!name.endsWith('.part') && !name.endsWith('.tmp')) continue;
      const info = await lstat(join(dir, name)).catch(() => undefined);
      if (info && now - info.mtimeMs > STALE_PART_MS) await rm(join(dir, name), { force: true });
    }
  }

  /** One GET, retried when transient; resolves undefined on 304. Counts requests. */
  async function get(
    key: string,
    ifNoneMatch: string | undefined,
    signal: AbortSignal,
    counter: { requests: number },
    consume: (response: GetObjectCommandOutput) => Promise<void>,
  ): Promise<boolean> {
    return withRetry(
      async () => {
        counter.requests++;
        let response: GetObjectCommandOutput;
        try {
          response = await getClient().send(
            new GetObjectCommand({ Bucket: bucket, Key: key, ...(ifNoneMatch ? { IfNoneMatch: ifNoneMatch } : {}) }),
            { abortSignal: signal },
          );
        } catch (error) {
          if (ifNoneMatch && isNotModified(error)) return false;
          throw error;
        }
        await consume(response);
        return true;
      },
      isTransient,
      policy,
      signal,
      options.onRetry
        ? (error, attempt, delayMs) =>
            options.onRetry!({ key, attempt, delayMs, error: describeS3Error(error, context(key)) })
        : undefined,
    );
  }

  /** Streams `key` into a temp file in `targetDir`, checks it, renames it into place. */
  async function download(
    key: string,
    ifNoneMatch: string | undefined,
    expected: { sha256?: string; size?: number; what: string },
    targetDir: string,
    durable: boolean,
    signal: AbortSignal,
    counter: { requests: number },
  ): Promise<Downloaded | undefined> {
    let result: Downloaded | undefined;
    const url = s3Url(bucket, key);
    const modified = await get(key, ifNoneMatch, signal, counter, async (response) => {
      const body = response.Body as Readable | undefined;
      if (!body) throw new IntegrityError(`S3 returned no body for ${url}.`);
      const announced = response.ContentLength;
      if (announced !== undefined && announced > MAX_BUNDLE_BYTES) {
        body.destroy();
        throw new IntegrityError(`${url} is ${announced} bytes, over the ${MAX_BUNDLE_BYTES}-byte bundle limit: it is not a gather bundle.`);
      }
      const sha = createHash('sha256');
      const md5 = createHash('md5');
      let count = 0;
      const meter = new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          count += chunk.length;
          if (count > MAX_BUNDLE_BYTES) {
            callback(new IntegrityError(`${url} is over the ${MAX_BUNDLE_BYTES}-byte bundle limit: it is not a gather bundle.`));
            return;
          }
          sha.update(chunk);
          md5.update(chunk);
          callback(null, chunk);
        },
      });
      const tmp = join(targetDir, `.bundle-${randomBytes(8).toString('hex')}.part`);
      try {
        await pipeline(body, meter, createWriteStream(tmp, { flags: 'wx', mode: 0o600 }), { signal });
        if (announced !== undefined && count !== announced) throw new TruncatedBodyError(count, announced);
        const sha256 = sha.digest('hex');
        const checks: [string, string | undefined][] = [
          [expected.what, expected.sha256],
          ['object metadata (x-amz-meta-sha256)', response.Metadata?.[SHA256_METADATA]],
        ];
        for (const [where, want] of checks) {
          if (want && want.toLowerCase() !== sha256) {
            throw new IntegrityError(
              `${url} does not match the sha256 in its ${where} (got ${sha256}, expected ${want}): the object changed after ` +
                'it was published. Publish a new version, or roll back with "gather-bundle rollback --to <version>".',
            );
          }
        }
        if (expected.size !== undefined && count !== expected.size) {
          throw new IntegrityError(`${url} is ${count} bytes but its ${expected.what} says ${expected.size}. Publish it again.`);
        }
        const etag = response.ETag?.replace(/"/g, '');
        const sse = response.ServerSideEncryption ?? '';
        if (verifyEtag && etag && /^[0-9a-f]{32}$/i.test(etag) && !sse.startsWith('aws:kms') && !response.SSECustomerAlgorithm) {
          const got = md5.digest('hex');
          if (got !== etag.toLowerCase()) {
            throw new IntegrityError(
              `${url} does not match its ETag (MD5 ${got}, ETag ${etag}). If this server's ETags are not MD5 digests, pass verifyEtag: false.`,
            );
          }
        }
        if (durable) {
          const handle = await open(tmp, READ_NO_FOLLOW);
          try {
            await handle.sync();
          } finally {
            await handle.close();
          }
        }
        const path = join(targetDir, cacheDir ? `bundle-${sha256.slice(0, 16)}.tar` : 'bundle.tar');
        await rename(tmp, path);
        result = { path, etag: response.ETag, sha256, size: count, bytes: count };
      } catch (error) {
        await rm(tmp, { force: true });
        throw error;
      }
    });
    // Bytes of failed attempts are not reported: only the ones that make up the bundle.
    return modified ? result : undefined;
  }

  async function fetchOnce(fetchOptions: FetchOptions, signal: AbortSignal, counter: { requests: number }): Promise<S3FetchResult> {
    const targetDir = cacheDir ?? resolve(fetchOptions.dir);
    if (cacheDir) await removeStaleParts(cacheDir);
    const state = await loadState();
    const fromCache = (cached: CacheState, bytes: number): S3FetchResult => ({
      path: join(cacheDir!, cached.bundle.file),
      unchanged: true,
      bytesTransferred: bytes,
      source: s3Url(bucket, cached.bundle.key) + at,
      requests: counter.requests,
      key: cached.bundle.key,
      sha256: cached.bundle.sha256,
      ...(cached.pointer ? { version: cached.pointer.version } : {}),
    });
    const commit = async (next: CacheState, previous: CacheState | undefined) => {
      await saveState(next);
      if (previous && previous.bundle.file !== next.bundle.file) await rm(join(cacheDir!, previous.bundle.file), { force: true });
    };

    if (prefix === undefined) {
      const key = fixedKey!;
      const hint = 'Check the key (option "key"), or upload the bundle there.';
      let got: Downloaded | undefined;
      try {
        got = await download(key, state?.bundle.etag, { what: 'object' }, targetDir, cacheDir !== undefined, signal, counter);
      } catch (error) {
        throw toFetchError(error, context(key, hint));
      }
      if (!got) return fromCache(state!, 0);
      if (cacheDir) {
        const bundle = { key, sha256: got.sha256, size: got.size, file: got.path.slice(cacheDir.length + 1) };
        await commit({ format: 1, source: sourceName, bundle: got.etag ? { ...bundle, etag: got.etag } : bundle }, state);
      }
      return {
        path: got.path,
        unchanged: false,
        bytesTransferred: got.bytes,
        source: s3Url(bucket, key) + at,
        requests: counter.requests,
        key,
        sha256: got.sha256,
      };
    }

    // Prefix mode: the pointer first, conditionally when a cached bundle can answer a 304.
    const ptrKey = pointerKey(prefix);
    const publishHint =
      `No bundle is published under "${prefix}/" yet, or the prefix is wrong: publish one with ` +
      `"gather-bundle publish --bundle <file> --bucket ${bucket} --prefix ${prefix}".`;
    let pointerBody: Buffer | undefined;
    let pointerEtag: string | undefined;
    try {
      const modified = await get(ptrKey, state?.pointer?.etag, signal, counter, async (response) => {
        pointerBody = await readSmallBody(response.Body as Readable, MAX_POINTER_BYTES, signal);
        pointerEtag = response.ETag;
      });
      if (!modified) return fromCache(state!, 0);
    } catch (error) {
      throw toFetchError(error, context(ptrKey, publishHint));
    }
    let pointer: BundlePointer;
    try {
      pointer = parsePointer(pointerBody!.toString('utf8'), prefix);
    } catch (error) {
      throw new FetchError(`${s3Url(bucket, ptrKey)}: ${(error as Error).message}.`, { scope: SCOPE, cause: error });
    }
    const pointerBytes = pointerBody!.length;
    const pointerState = (bundle: CacheState['bundle']): CacheState => ({
      format: 1,
      source: sourceName,
      ...(pointerEtag
        ? {
            pointer: {
              etag: pointerEtag,
              version: pointer.version,
              key: pointer.key,
              ...(pointer.sha256 ? { sha256: pointer.sha256 } : {}),
            },
          }
        : {}),
      bundle,
    });

    // The pointer was rewritten but still names the bundle we hold: no second request.
    if (state && state.bundle.key === pointer.key && (!pointer.sha256 || pointer.sha256 === state.bundle.sha256)) {
      await commit(pointerState(state.bundle), undefined);
      return { ...fromCache(state, pointerBytes), version: pointer.version };
    }

    const rollbackHint =
      `The pointer ${s3Url(bucket, ptrKey)} names version "${pointer.version}", whose bundle is missing: publish it again, or move ` +
      `the pointer with "gather-bundle rollback --bucket ${bucket} --prefix ${prefix} --to <version>".`;
    let got: Downloaded | undefined;
    try {
      got = await download(
        pointer.key,
        undefined,
        { what: `pointer ${pointerKey(prefix)}`, ...(pointer.sha256 ? { sha256: pointer.sha256 } : {}), ...(pointer.size !== undefined ? { size: pointer.size } : {}) },
        targetDir,
        cacheDir !== undefined,
        signal,
        counter,
      );
    } catch (error) {
      throw toFetchError(error, context(pointer.key, rollbackHint));
    }
    if (!got) throw new FetchError(`Unexpected 304 for ${s3Url(bucket, pointer.key)}.`, { scope: SCOPE });
    if (cacheDir) {
      const bundle = { key: pointer.key, sha256: got.sha256, size: got.size, file: got.path.slice(cacheDir.length + 1) };
      await commit(pointerState(got.etag ? { ...bundle, etag: got.etag } : bundle), state);
    }
    return {
      path: got.path,
      unchanged: false,
      bytesTransferred: pointerBytes + got.bytes,
      source: s3Url(bucket, pointer.key) + at,
      requests: counter.requests,
      version: pointer.version,
      key: pointer.key,
      sha256: got.sha256,
    };
  }

  function toFetchError(error: unknown, ctx: ErrorContext): Error {
    if (isGatherError(error) || isHostResourceError(error)) return error;
    if (error instanceof IntegrityError) return new FetchError(redactText(error.message, secrets), { scope: SCOPE, cause: error });
    return new FetchError(describeS3Error(error, ctx), { scope: SCOPE, cause: error });
  }

  return {
    name: 's3',
    async fetch(fetchOptions: FetchOptions): Promise<S3FetchResult> {
      if (!fetchOptions?.dir && !cacheDir) {
        throw new ConfigError('fetch() needs options.dir (a private directory) when no cacheDir is set.', { scope: SCOPE });
      }
      const timeout = AbortSignal.timeout(timeoutMs);
      const signal = fetchOptions.signal ? AbortSignal.any([fetchOptions.signal, timeout]) : timeout;
      const counter = { requests: 0 };
      let lock: Lock | undefined;
      try {
        signal.throwIfAborted();
        if (cacheDir) {
          // Real directories, not links planted in their place; then one fetch at a time per cache.
          await ensurePrivateDir(cacheRoot!);
          await ensurePrivateDir(cacheDir);
          lock = await acquireLock(join(cacheDir, CACHE_LOCK), {
            purpose: `fetch ${sourceName}`,
            waitMs: timeoutMs,
            pollMs: 100,
            signal,
            busyHint: 'another process is fetching into this cache; give each its own cacheDir or fetch one at a time.',
            scope: SCOPE,
            ...(options.onLockTakeover ? { onTakeover: options.onLockTakeover } : {}),
          });
        }
        return await fetchOnce(fetchOptions, signal, counter);
      } catch (error) {
        if (fetchOptions.signal?.aborted) {
          throw new AbortedError(`Fetch of ${sourceName} interrupted.`, { scope: SCOPE, cause: error });
        }
        if (timeout.aborted) {
          throw new FetchError(
            `Timed out after ${timeoutMs} ms fetching ${sourceName}${at} (${counter.requests} request(s) made). ` +
              'The endpoint may be unreachable or slow: check the network and proxy settings, or raise timeoutMs.',
            { scope: SCOPE, cause: error },
          );
        }
        if (LockBusyError.isInstance(error)) throw new FetchError(error.message.replace(/^\[gather\] \[[^\]]+\] /, ''), { scope: SCOPE, cause: error });
        // A full disk (or no memory, no descriptors) is the host's failure, not a fetch failure.
        if (isGatherError(error) || isHostResourceError(error)) throw error;
        if (UnsafeDirectoryError.isInstance(error)) throw new FetchError(error.message, { scope: SCOPE, cause: error });
        throw new FetchError(describeS3Error(error, context(sourceName.slice(`s3://${bucket}/`.length))), { scope: SCOPE, cause: error });
      } finally {
        await lock?.release();
      }
    },
    async close() {
      client?.destroy();
      client = undefined;
    },
  };
}
