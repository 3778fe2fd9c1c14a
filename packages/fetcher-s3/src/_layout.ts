// The layout of published bundles under a prefix:
//   <prefix>/<version>.tar   immutable bundle (metadata: sha256, bundle-version), never overwritten
//   <prefix>/latest          pointer: small JSON {format, version, key, sha256, size, published}
// Agents read the pointer (one conditional GET) and then, only when it moved, the bundle it names.
import { ConfigError, keyPrefixProblem } from '@gather/core';
import { SCOPE } from './client.js';

export const POINTER_NAME = 'latest';
export const VERSION_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;
/** Object metadata key (x-amz-meta-sha256) holding the sha256 (hex) of the bundle. */
export const SHA256_METADATA = 'sha256';
export const VERSION_METADATA = 'bundle-version';
/** Object metadata key holding the bundle's manifest sequence (rollback finds the highest published one). */
export const SEQUENCE_METADATA = 'bundle-sequence';
/** A pointer is a few hundred bytes; anything bigger is not one. */
export const MAX_POINTER_BYTES = 64 * 1024;

export interface BundlePointer {
  format: 1;
  version: string;
  /** Object key of the bundle: always `<prefix>/<version>.tar`. */
  key: string;
  /** sha256 (hex) of the bundle, when known. */
  sha256?: string;
  size?: number;
  /** When the pointer was moved (ISO-8601). */
  published?: string;
}

export function validateVersion(version: string, source = 'bundle version'): string {
  if (typeof version !== 'string' || !VERSION_PATTERN.test(version) || /^\.+$/.test(version)) {
    throw new ConfigError(
      `Invalid ${source} ${JSON.stringify(version)}: use 1 to 64 characters among A-Z a-z 0-9 . _ - (e.g. 2024.06.01-1).`,
      { scope: SCOPE },
    );
  }
  return version;
}

/** "gather/prod/" and "/gather/prod" both mean "gather/prod". */
export function normalizePrefix(prefix: string): string {
  const trimmed = typeof prefix === 'string' ? prefix.replace(/^\/+|\/+$/g, '') : '';
  if (!trimmed) {
    throw new ConfigError('Missing option "prefix". Pass the key prefix bundles are published under, e.g. "gather/prod".', {
      scope: SCOPE,
    });
  }
  if (keyPrefixProblem(trimmed)) {
    throw new ConfigError(`Invalid option "prefix" ${JSON.stringify(prefix)}: no empty, "." or ".." path segments.`, {
      scope: SCOPE,
    });
  }
  return trimmed;
}

export const pointerKey = (prefix: string): string => `${prefix}/${POINTER_NAME}`;
export const versionKey = (prefix: string, version: string): string => `${prefix}/${version}.tar`;

export function serializePointer(pointer: BundlePointer): string {
  return JSON.stringify(pointer, null, 2) + '\n';
}

/**
 * Reads a pointer body: the JSON written by publish/rollback, or (for hand-made pointers) just the version
 * as text. The bundle key is always derived from the version, so a pointer cannot send agents elsewhere.
 */
export function parsePointer(body: string, prefix: string): BundlePointer {
  const text = body.trim();
  const bad = (why: string) =>
    new Error(`the pointer ${pointerKey(prefix)} is not valid (${why}); move it with "gather-bundle rollback --to <version>"`);
  let version: unknown;
  let sha256: unknown;
  let size: unknown;
  let published: unknown;
  if (text.startsWith('{')) {
    let json: Record<string, unknown>;
    try {
      json = JSON.parse(text) as Record<string, unknown>;
    } catch {
      throw bad('not JSON');
    }
    ({ version, sha256, size, published } = json);
    if (json.key !== undefined && typeof version === 'string' && json.key !== versionKey(prefix, version)) {
      throw bad(`key ${JSON.stringify(json.key)} is not ${versionKey(prefix, version)}`);
    }
  } else {
    version = text;
  }
  if (typeof version !== 'string' || !VERSION_PATTERN.test(version) || /^\.+$/.test(version)) {
    throw bad(`version ${JSON.stringify(version)}`);
  }
  if (sha256 !== undefined && (typeof sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(sha256))) throw bad('sha256');
  if (size !== undefined && (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0)) throw bad('size');
  const pointer: BundlePointer = { format: 1, version, key: versionKey(prefix, version) };
  if (typeof sha256 === 'string') pointer.sha256 = sha256;
  if (typeof size === 'number') pointer.size = size;
  if (typeof published === 'string') pointer.published = published;
  return pointer;
}
