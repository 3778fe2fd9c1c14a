/**
 * `gather-bundle rollback`: bring a published version back without undoing replay protection. Agents refuse a
 * bundle whose sequence is lower than one they ran, so moving `<prefix>/latest` back to an old bundle would
 * only make them refuse it. Instead the old bundle is republished as a new version with a higher sequence,
 * re-signed by the caller's signer (the CI signing key). A version with a higher sequence than the current one
 * (a bundle uploaded with `publish --no-move`) is simply pointed to: that is rolling forward.
 */
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { MAX_BUNDLE_BYTES, type BundleManifest } from '@gather/core';
import { s3Url } from '../client.js';
import { SEQUENCE_METADATA, SHA256_METADATA, pointerKey, validateVersion, versionKey } from '../_layout.js';
import { readBundleManifest } from './manifest.js';
import { publishBundle } from './publish.js';
import {
  PublishError,
  checkBucket,
  head,
  listWith,
  movePointer,
  readPointer,
  session,
  type BucketOptions,
  type Session,
} from './session.js';

/** Re-signs a bundle under `sequence` (a new version, same checks); provided by gather-bundle, which holds the key. */
export type BundleSigner = (bundle: Buffer, sequence: number) => Promise<Uint8Array>;

export interface RollbackOptions extends BucketOptions {
  /** The published version whose checks should run again. */
  to: string;
  /** Needed unless `to` is newer than the current bundle: republishes it under a higher sequence. */
  sign?: BundleSigner;
  /** The new sequence; default: one more than the highest of the current and the target bundle. */
  sequence?: number;
}

export interface RollbackResult {
  /** The version `latest` names now: `to` itself (roll forward) or the republished copy of it. */
  version: string;
  /** The version whose checks it carries (`to`). */
  from: string;
  sequence: number;
  /** True when `to` was re-signed and published as `version`. */
  republished: boolean;
  bucket: string;
  key: string;
  pointerKey: string;
  sha256?: string;
  previousVersion?: string;
  pointerMoved: boolean;
}

async function download(s: Session, bucket: string, key: string): Promise<Buffer> {
  try {
    return await s.send(async () => {
      const response = await s.client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      if ((response.ContentLength ?? 0) > MAX_BUNDLE_BYTES) {
        throw new PublishError(`${s3Url(bucket, key)} is ${response.ContentLength} bytes, over the ${MAX_BUNDLE_BYTES}-byte bundle limit.`);
      }
      return Buffer.from((await response.Body?.transformToByteArray()) ?? new Uint8Array());
    });
  } catch (error) {
    throw s.fail(error, key);
  }
}

function sequenceOf(manifest: BundleManifest, where: string): number {
  if (!Number.isSafeInteger(manifest.sequence)) {
    throw new PublishError(
      `${where} has no sequence (built by an older gather-bundle): agents refuse it. Rebuild its checks with ` +
        '"gather-bundle build --sequence <n>" and publish that instead.',
    );
  }
  return manifest.sequence;
}

/** The highest sequence among the versions published under the prefix (from their object metadata). */
async function highestPublishedSequence(s: Session, bucket: string, prefix: string): Promise<number> {
  const versions = await listWith(s, bucket, prefix);
  let highest = 0;
  let next = 0;
  const worker = async () => {
    while (next < versions.length) {
      const found = await head(s, bucket, versions[next++]!.key);
      const sequence = Number(found?.Metadata?.[SEQUENCE_METADATA]);
      if (Number.isSafeInteger(sequence)) highest = Math.max(highest, sequence);
    }
  };
  await Promise.all(Array.from({ length: Math.min(8, versions.length) }, worker));
  return highest;
}

async function missingVersion(s: Session, bucket: string, prefix: string, version: string, key: string): Promise<PublishError> {
  const known = await listWith(s, bucket, prefix).catch(() => undefined);
  const list =
    known === undefined
      ? ''
      : known.length === 0
        ? ` No version is published under "${prefix}/".`
        : ` Published versions (newest first): ${known
            .slice(0, 20)
            .map((v) => v.version)
            .join(', ')}${known.length > 20 ? ', ...' : ''}.`;
  return new PublishError(`Cannot roll back to "${version}": ${s3Url(bucket, key)} does not exist.${list}`);
}

/** Makes `<prefix>/latest` run the checks of version `to` again, under a sequence agents accept. */
export async function rollbackBundle(options: RollbackOptions): Promise<RollbackResult> {
  const { bucket, prefix } = checkBucket(options);
  const from = validateVersion(options.to, 'version (--to)');
  const key = versionKey(prefix, from);
  const s = session(options, 'roll back');
  let target: Buffer;
  let targetSequence: number;
  let publishedSequence: number;
  let current: { version: string; sequence: number } | undefined;
  try {
    const existing = await head(s, bucket, key);
    if (!existing) throw await missingVersion(s, bucket, prefix, from, key);
    target = await download(s, bucket, key);
    const pointer = await readPointer(s, bucket, prefix);
    if (pointer) {
      const manifest = readBundleManifest(await download(s, bucket, pointer.key), { source: s3Url(bucket, pointer.key) });
      current = { version: pointer.version, sequence: sequenceOf(manifest, `The current bundle ${s3Url(bucket, pointer.key)}`) };
    }
    targetSequence = sequenceOf(readBundleManifest(target, { source: s3Url(bucket, key) }), s3Url(bucket, key));
    // Agents may have run a bundle newer than the one `latest` names now (it may have been moved back).
    publishedSequence = await highestPublishedSequence(s, bucket, prefix);
    if (options.sequence === undefined && targetSequence >= publishedSequence && (!current || targetSequence > current.sequence)) {
      // Rolling forward: agents accept it as it is.
      const sha256 = existing.Metadata?.[SHA256_METADATA];
      const moved = await movePointer(s, bucket, prefix, {
        version: from,
        ...(sha256 && /^[0-9a-f]{64}$/.test(sha256) ? { sha256 } : {}),
        ...(existing.ContentLength !== undefined ? { size: existing.ContentLength } : {}),
      });
      return {
        version: from,
        from,
        sequence: targetSequence,
        republished: false,
        bucket,
        key,
        pointerKey: pointerKey(prefix),
        ...(sha256 ? { sha256 } : {}),
        ...(moved.previousVersion !== undefined ? { previousVersion: moved.previousVersion } : {}),
        pointerMoved: moved.moved,
      };
    }
  } finally {
    s.close();
  }

  const highest = Math.max(current?.sequence ?? 0, publishedSequence, targetSequence);
  const sequence = options.sequence ?? highest + 1;
  if (sequence <= highest) {
    throw new PublishError(
      `Sequence ${sequence} is not higher than ${highest}, the highest sequence published under "${prefix}/": agents that ran it would ` +
        'refuse the rollback. Pass a higher --sequence, or leave it out.',
    );
  }
  if (!options.sign) {
    throw new PublishError(
      `Rolling back to "${from}" (sequence ${targetSequence}) needs the signing key: agents refuse a bundle older ` +
        `than one they ran (sequences up to ${highest} are published), so the old checks are ` +
        'republished under a new, higher sequence. Pass --key <private.pem> (the CI signing key).',
    );
  }
  const signed = Buffer.from(await options.sign(target, sequence));
  const published = await publishBundle({ ...options, bundle: signed });
  return {
    version: published.version,
    from,
    sequence,
    republished: true,
    bucket,
    key: published.key,
    pointerKey: published.pointerKey,
    sha256: published.sha256,
    ...(published.previousVersion !== undefined ? { previousVersion: published.previousVersion } : {}),
    pointerMoved: published.pointerMoved,
  };
}
