/**
 * @gather/checks-bundler: builds a checks/ directory into a signed, obfuscated gather bundle.
 */
import { collectChecksWith, type CollectedChecks } from './_collect.js';

export {
  buildBundle,
  writeBundle,
  validateVersion,
  validateSequence,
  parseDuration,
  parseCreated,
  BUNDLE_FORMAT,
  MANIFEST_MEMBER,
  SIGNATURE_MEMBER,
  RUNNER_MEMBER,
  type BuildOptions,
  type WriteOptions,
  type BuiltBundle,
} from './_bundle.js';
export { generateSigningKeyPair, parseSigningKey, type SigningKeyPair } from './_keys.js';
export { resignBundle, type ResignOptions } from './_resign.js';
export { MAX_TIMEOUT_SEC, TIMEOUT_DIRECTIVE_LINES, type CollectedChecks, type CollectOptions } from './_collect.js';

/** Reads and validates a checks directory; throws one ChecksInvalidError listing every problem. */
export function collectChecks(checksDir: string): Promise<CollectedChecks> {
  return collectChecksWith(checksDir);
}
