/**
 * @gather/checks-bundler: builds a checks/ directory into a signed, obfuscated gather bundle.
 */
import { collectChecksWith, type CollectedChecks } from './collect.js';

export { buildBundle, writeBundle, type BuildOptions, type WriteOptions, type BuiltBundle } from './bundle.js';
export { generateSigningKeyPair, parseSigningKey, type SigningKeyPair } from './keys.js';
export { resignBundle, type ResignOptions } from './resign.js';
export type { CollectedChecks, CollectOptions } from './collect.js';

/** Reads and validates a checks directory; throws one ChecksInvalidError listing every problem. */
export function collectChecks(checksDir: string): Promise<CollectedChecks> {
  return collectChecksWith(checksDir);
}
