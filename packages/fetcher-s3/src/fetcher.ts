/**
 * The S3 fetcher. Thousands of agents poll the same bundle, so the common case (nothing changed) costs one
 * conditional GET answered by a 304 with no body:
 *
 *   prefix mode (follows <prefix>/latest)      key mode (one fixed object)
 *   unchanged:  1 request (pointer: 304)        1 request (304)
 *   changed:    2 requests (pointer + bundle)   1 request
 *   no cache:   2 requests, always downloads    1 request, always downloads
 *
 * This file composes the parts: options.ts (checked options), cache.ts (the local cache and its lock),
 * conditional-get.ts (If-None-Match, retries) and download.ts (verified download).
 */
import { join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import type { S3Client } from '@aws-sdk/client-s3';
import {
  AbortedError,
  ConfigError,
  FetchError,
  isGatherError,
  isHostResourceError,
  LockBusyError,
  redactText,
  type FetchOptions,
  type FetchResult,
  type Fetcher,
  UnsafeDirectoryError,
} from '@gather/core';
import { SCOPE, createS3Client, s3Url } from './client.js';
import { IntegrityError, describeS3Error, type ErrorContext } from './_errors.js';
import { MAX_POINTER_BYTES, parsePointer, pointerKey, type BundlePointer } from './_layout.js';
import { cacheDirFor, openCache, type BundleCache, type CacheState, type CachedBundle } from './cache.js';
import { createConditionalGet, readSmallBody, type RequestCounter } from './conditional-get.js';
import { downloadVerified, type Downloaded, type Expected } from './download.js';
import { resolveSettings, type S3FetcherOptions } from './options.js';

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

/** One fetch in progress. */
interface FetchRun {
  /** The locked cache, when option cacheDir is set. */
  cache: BundleCache | undefined;
  /** What the previous fetch left in the cache. */
  state: CacheState | undefined;
  /** Where the bundle is written: the cache directory, or fetch()'s `dir`. */
  targetDir: string;
  signal: AbortSignal;
  counter: RequestCounter;
}

/** Creates a fetcher for bundles in S3 (or an S3-compatible server). */
export function createS3Fetcher(options: S3FetcherOptions): S3Fetcher {
  const settings = resolveSettings(options);
  const { bucket, target, timeoutMs, sourceName, at } = settings;
  const cacheDir = settings.cacheRoot ? cacheDirFor(settings.cacheRoot, options.endpoint, bucket, target) : undefined;
  let client: S3Client | undefined;
  const { onRetry } = options;
  const get = createConditionalGet({
    bucket,
    client: () => (client ??= createS3Client(options, { timeoutMs })),
    policy: settings.policy,
    ...(onRetry
      ? {
          onRetry: (key: string, error: unknown, attempt: number, delayMs: number) =>
            onRetry({ key, attempt, delayMs, error: describeS3Error(error, context(key)) }),
        }
      : {}),
  });

  function context(key: string, notFoundHint?: string): ErrorContext {
    return {
      action: 'fetch',
      bucket,
      key,
      endpoint: settings.endpoint,
      credentialsSource: settings.credentialsSource,
      secrets: settings.secrets,
      ...(notFoundHint ? { notFoundHint } : {}),
    };
  }

  function toFetchError(error: unknown, ctx: ErrorContext): Error {
    if (isGatherError(error) || isHostResourceError(error)) return error;
    if (error instanceof IntegrityError) return new FetchError(redactText(error.message, settings.secrets), { scope: SCOPE, cause: error });
    return new FetchError(describeS3Error(error, ctx), { scope: SCOPE, cause: error });
  }

  function download(run: FetchRun, key: string, ifNoneMatch: string | undefined, expected: Expected): Promise<Downloaded | undefined> {
    return downloadVerified(get, settings, {
      key,
      ifNoneMatch,
      expected,
      targetDir: run.targetDir,
      fileName: run.cache ? run.cache.bundleFile : () => 'bundle.tar',
      durable: run.cache !== undefined,
      signal: run.signal,
      counter: run.counter,
    });
  }

  function fromCache(run: FetchRun, cached: CacheState, bytes: number): S3FetchResult {
    return {
      path: join(run.cache!.dir, cached.bundle.file),
      unchanged: true,
      bytesTransferred: bytes,
      source: s3Url(bucket, cached.bundle.key) + at,
      requests: run.counter.requests,
      key: cached.bundle.key,
      sha256: cached.bundle.sha256,
      ...(cached.pointer ? { version: cached.pointer.version } : {}),
    };
  }

  function cachedBundle(run: FetchRun, key: string, got: Downloaded): CachedBundle {
    const bundle = { key, sha256: got.sha256, size: got.size, file: got.path.slice(run.cache!.dir.length + 1) };
    return got.etag ? { ...bundle, etag: got.etag } : bundle;
  }

  /** Key mode: one conditional GET of the object itself. */
  async function fetchKey(run: FetchRun, key: string): Promise<S3FetchResult> {
    const hint = 'Check the key (option "key"), or upload the bundle there.';
    let got: Downloaded | undefined;
    try {
      got = await download(run, key, run.state?.bundle.etag, { what: 'object' });
    } catch (error) {
      throw toFetchError(error, context(key, hint));
    }
    if (!got) return fromCache(run, run.state!, 0);
    if (run.cache) await run.cache.commit({ format: 1, source: sourceName, bundle: cachedBundle(run, key, got) }, run.state);
    return {
      path: got.path,
      unchanged: false,
      bytesTransferred: got.bytes,
      source: s3Url(bucket, key) + at,
      requests: run.counter.requests,
      key,
      sha256: got.sha256,
    };
  }

  /** Prefix mode: the pointer first, conditionally when a cached bundle can answer a 304; then the bundle it names. */
  async function fetchPointed(run: FetchRun, prefix: string): Promise<S3FetchResult> {
    const ptrKey = pointerKey(prefix);
    const publishHint =
      `No bundle is published under "${prefix}/" yet, or the prefix is wrong: publish one with ` +
      `"gather-bundle publish --bundle <file> --bucket ${bucket} --prefix ${prefix}".`;
    let pointerBody: Buffer | undefined;
    let pointerEtag: string | undefined;
    try {
      const request = { key: ptrKey, ifNoneMatch: run.state?.pointer?.etag, signal: run.signal, counter: run.counter };
      const modified = await get(request, async (response) => {
        pointerBody = await readSmallBody(response.Body as Readable, MAX_POINTER_BYTES, run.signal);
        pointerEtag = response.ETag;
      });
      if (!modified) return fromCache(run, run.state!, 0);
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
    const stateWith = (bundle: CachedBundle): CacheState => ({
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
    const state = run.state;
    if (state && state.bundle.key === pointer.key && (!pointer.sha256 || pointer.sha256 === state.bundle.sha256)) {
      await run.cache!.commit(stateWith(state.bundle), undefined);
      return { ...fromCache(run, state, pointerBytes), version: pointer.version };
    }

    const rollbackHint =
      `The pointer ${s3Url(bucket, ptrKey)} names version "${pointer.version}", whose bundle is missing: publish it again, or move ` +
      `the pointer with "gather-bundle rollback --bucket ${bucket} --prefix ${prefix} --to <version>".`;
    const expected: Expected = {
      what: `pointer ${ptrKey}`,
      ...(pointer.sha256 ? { sha256: pointer.sha256 } : {}),
      ...(pointer.size !== undefined ? { size: pointer.size } : {}),
    };
    let got: Downloaded | undefined;
    try {
      got = await download(run, pointer.key, undefined, expected);
    } catch (error) {
      throw toFetchError(error, context(pointer.key, rollbackHint));
    }
    if (!got) throw new FetchError(`Unexpected 304 for ${s3Url(bucket, pointer.key)}.`, { scope: SCOPE });
    if (run.cache) await run.cache.commit(stateWith(cachedBundle(run, pointer.key, got)), state);
    return {
      path: got.path,
      unchanged: false,
      bytesTransferred: pointerBytes + got.bytes,
      source: s3Url(bucket, pointer.key) + at,
      requests: run.counter.requests,
      version: pointer.version,
      key: pointer.key,
      sha256: got.sha256,
    };
  }

  /** Maps what a fetch threw to the error the caller sees: interrupted, timed out, or a FetchError that says why. */
  function fetchFailure(error: unknown, callerSignal: AbortSignal | undefined, timeout: AbortSignal, counter: RequestCounter): Error {
    if (callerSignal?.aborted) return new AbortedError(`Fetch of ${sourceName} interrupted.`, { scope: SCOPE, cause: error });
    if (timeout.aborted) {
      return new FetchError(
        `Timed out after ${timeoutMs} ms fetching ${sourceName}${at} (${counter.requests} request(s) made). ` +
          'The endpoint may be unreachable or slow: check the network and proxy settings, or raise timeoutMs.',
        { scope: SCOPE, cause: error },
      );
    }
    if (LockBusyError.isInstance(error))
      return new FetchError(error.message.replace(/^\[gather\] \[[^\]]+\] /, ''), { scope: SCOPE, cause: error });
    // A full disk (or no memory, no descriptors) is the host's failure, not a fetch failure.
    if (isGatherError(error) || isHostResourceError(error)) return error;
    if (UnsafeDirectoryError.isInstance(error)) return new FetchError(error.message, { scope: SCOPE, cause: error });
    return new FetchError(describeS3Error(error, context(sourceName.slice(`s3://${bucket}/`.length))), { scope: SCOPE, cause: error });
  }

  return {
    name: 's3',
    async fetch(fetchOptions: FetchOptions): Promise<S3FetchResult> {
      if (!fetchOptions?.dir && !cacheDir) {
        throw new ConfigError('fetch() needs options.dir (a private directory) when no cacheDir is set.', { scope: SCOPE });
      }
      const timeout = AbortSignal.timeout(timeoutMs);
      const signal = fetchOptions.signal ? AbortSignal.any([fetchOptions.signal, timeout]) : timeout;
      const counter: RequestCounter = { requests: 0 };
      let cache: BundleCache | undefined;
      try {
        signal.throwIfAborted();
        if (cacheDir) {
          cache = await openCache(settings.cacheRoot!, cacheDir, {
            purpose: `fetch ${sourceName}`,
            waitMs: timeoutMs,
            signal,
            ...(options.onLockTakeover ? { onLockTakeover: options.onLockTakeover } : {}),
          });
        }
        const run: FetchRun = { cache, state: await cache?.load(), targetDir: cacheDir ?? resolve(fetchOptions.dir), signal, counter };
        return await (target.prefix !== undefined ? fetchPointed(run, target.prefix) : fetchKey(run, target.key));
      } catch (error) {
        throw fetchFailure(error, fetchOptions.signal, timeout, counter);
      } finally {
        await cache?.release();
      }
    },
    async close() {
      client?.destroy();
      client = undefined;
    },
  };
}
