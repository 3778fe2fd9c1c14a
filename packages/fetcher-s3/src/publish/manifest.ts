// Reads manifest.json out of a bundle (an uncompressed ustar archive) without verifying the signature:
// publish only needs the version. Core's verifyBundle is used instead when a public key is given.
import { ConfigError, readTar, verifyBundle, type BundleManifest } from '@gather/core';
import { SCOPE } from '../client.js';
import { validateVersion } from '../_layout.js';

function notABundle(source: string, why: string): ConfigError {
  return new ConfigError(`${source} is not a gather bundle (${why}). Build one with "gather-bundle build".`, { scope: SCOPE });
}

/** manifest.json of a bundle, after core's strict tar reader walked the whole archive (a truncated bundle is never published). */
function manifestMember(bytes: Buffer, source: string): Buffer | undefined {
  try {
    return readTar(bytes).find((member) => member.name === 'manifest.json')?.data;
  } catch (error) {
    throw notABundle(source, (error as Error).message.replace(/^\[gather\] (Bundle refused: )?/, ''));
  }
}

/**
 * The manifest of a bundle. With `publicKeyPem`, the whole bundle is verified first (signature and member
 * hashes) by core's verifyBundle; without it only the tar structure and the version are checked.
 */
export function readBundleManifest(bytes: Buffer, options: { source?: string; publicKeyPem?: string | Buffer } = {}): BundleManifest {
  const source = options.source ?? 'the bundle';
  if (options.publicKeyPem !== undefined) {
    const verified = verifyBundle(bytes, options.publicKeyPem);
    validateVersion(verified.manifest.version, `version in the manifest of ${source}`);
    return verified.manifest;
  }
  const raw = manifestMember(bytes, source);
  if (!raw) throw notABundle(source, 'no manifest.json');
  let manifest: BundleManifest;
  try {
    manifest = JSON.parse(raw.toString('utf8')) as BundleManifest;
  } catch {
    throw notABundle(source, 'manifest.json is not JSON');
  }
  if (typeof manifest !== 'object' || manifest === null) throw notABundle(source, 'manifest.json is not an object');
  validateVersion(manifest.version, `version in the manifest of ${source}`);
  return manifest;
}
