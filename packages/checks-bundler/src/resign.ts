/**
 * Rolling back without weakening replay protection: agents refuse a bundle older than one they ran, so an old
 * version comes back as a new bundle — the same runner (same checks, same hash), a manifest with a new
 * version and a higher sequence, signed again. Only a bundle this key signed is re-signed.
 */
import { createPublicKey } from 'node:crypto';
import { ConfigError, RUNNER_MEMBER, verifyBundle, type BundleManifest } from '@gather/core';
import { parseCreated, signedBundle, validateSequence, validateVersion, type BuiltBundle } from './bundle.js';
import { SCOPE } from './collect.js';
import { loadSigningKey } from './keys.js';

export interface ResignOptions {
  privateKeyPem?: string | Buffer;
  privateKeyPath?: string;
  /** The new sequence; must be higher than the one agents run now. */
  sequence: number;
  /** Default: `<old version>-r<sequence>`. */
  version?: string;
  /** Seconds from `now` until the bundle expires. Default: the old bundle's lifetime (expires_at - created), if it had one. */
  expiresInSec?: number;
  now?: Date;
}

function defaultVersion(old: string, sequence: number): string {
  const suffix = `-r${sequence}`;
  return old.slice(0, 64 - suffix.length) + suffix;
}

/** Re-signs `bundle` (verified first against the public half of the key) under a new sequence and version. */
export async function resignBundle(bundle: Uint8Array, options: ResignOptions): Promise<BuiltBundle> {
  validateSequence(options.sequence);
  const key = await loadSigningKey(options);
  let old: BundleManifest;
  let runner: Buffer;
  try {
    const verified = verifyBundle(bundle, createPublicKey(key));
    old = verified.manifest;
    runner = verified.members.get(RUNNER_MEMBER)!;
  } catch (cause) {
    throw new ConfigError(
      `Cannot re-sign this bundle: ${(cause as Error).message.replace(/^\[gather\] /, '')} Only a bundle signed with this key ` +
        '(and made by a gather-bundle that writes a sequence) can be republished; otherwise rebuild its checks with "gather-bundle build --sequence <n>".',
      { scope: SCOPE, cause },
    );
  }
  const version = validateVersion(options.version ?? defaultVersion(old.version, options.sequence));
  const now = options.now ?? new Date();
  const lifetimeSec =
    options.expiresInSec ??
    (old.expires_at !== undefined ? Math.max(1, Math.round((Date.parse(old.expires_at) - Date.parse(old.created)) / 1000)) : undefined);
  const { expires_at: _expired, ...rest } = old;
  const manifest: BundleManifest = {
    ...rest,
    version,
    sequence: options.sequence,
    ...(lifetimeSec !== undefined
      ? { expires_at: new Date(Math.floor(now.getTime() / 1000 + lifetimeSec) * 1000).toISOString().replace(/\.000Z$/, 'Z') }
      : {}),
  };
  // Keys in the bundler's order, so a re-signed manifest reads like a built one.
  const ordered: BundleManifest = {
    format: manifest.format,
    version: manifest.version,
    created: manifest.created,
    sequence: manifest.sequence,
    ...(manifest.expires_at !== undefined ? { expires_at: manifest.expires_at } : {}),
    payload_bytes: manifest.payload_bytes,
    checks: manifest.checks,
    files: manifest.files,
  };
  return signedBundle(ordered, runner, key, parseCreated(old.created));
}
