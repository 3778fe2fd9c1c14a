/**
 * The one fetch-and-verify step, shared by run(), `gather-agent verify` and `gather-agent run --dry-run`:
 * fetch the bundle, read it (bounded), check its signature and hashes, then that it is not older than a
 * bundle this host already accepted nor expired. Nothing is extracted or run here.
 */
import type { KeyObject } from 'node:crypto';
import { readBundleFile, verifyBundle, type VerifiedBundle } from './bundle.js';
import { AbortedError, errorMessage, FetchError, isGatherError } from './errors.js';
import { checkFreshness, type SequenceState } from './sequence.js';
import type { Fetcher, FetchResult } from './types.js';

export interface FetchVerifiedOptions {
  fetcher: Fetcher;
  /** A private directory (mode 0700) the fetcher may write the bundle into. */
  dir: string;
  publicKey: string | Buffer | KeyObject;
  signal?: AbortSignal;
  /** Refuses a bundle older than the highest sequence accepted from this source (only read here). */
  sequenceState?: SequenceState;
  /** The clock bundle expiry is checked against. Default: the system's. */
  now?: () => Date;
}

/** How far the step got; filled as it goes, so a caller still knows what was fetched when it throws. */
export interface FetchProgress {
  fetched?: FetchResult;
  /** Set once the signature and hashes checked out (also when the bundle is then refused as replayed or expired). */
  verified?: VerifiedBundle;
}

/**
 * Node's errors for a host that cannot give the agent what it needs (full disk, quota, read-only file system,
 * no memory or file descriptors, I/O error): not a fetch failure and not a bug, whoever hit them.
 */
const HOST_RESOURCE_CODES = new Set(['ENOSPC', 'EDQUOT', 'EROFS', 'EIO', 'EMFILE', 'ENFILE', 'ENOMEM']);

export function isHostResourceError(error: unknown): error is NodeJS.ErrnoException {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' && HOST_RESOURCE_CODES.has(code);
}

export async function fetchVerifiedBundle(options: FetchVerifiedOptions, progress: FetchProgress = {}): Promise<Required<FetchProgress>> {
  const { fetcher, signal } = options;
  const throwIfAborted = () => {
    if (signal?.aborted) throw new AbortedError('Run interrupted before the checks ran.');
  };
  let fetched: FetchResult;
  try {
    fetched = await fetcher.fetch({ dir: options.dir, ...(signal ? { signal } : {}) });
  } catch (error) {
    throwIfAborted();
    // A fetcher's own failures are fetch failures; a gather error keeps its identity, and a host out of
    // space (or memory, or descriptors) is reported as what it is.
    if (isGatherError(error) || isHostResourceError(error)) throw error;
    throw new FetchError(`[${fetcher.name} fetcher] ${errorMessage(error)}`, { cause: error });
  }
  progress.fetched = fetched;
  throwIfAborted();
  const verified = verifyBundle(await readBundleFile(fetched.path, fetched.source), options.publicKey);
  progress.verified = verified;
  const highestAccepted = await options.sequenceState?.highest();
  checkFreshness(verified.manifest, { highestAccepted, now: options.now?.() ?? new Date(), source: fetched.source });
  return { fetched, verified };
}
