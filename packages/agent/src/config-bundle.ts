/**
 * What the agent runs: the bundle source (a local file or S3) and the public key every bundle must be signed
 * with. There is no unsigned mode, local or remote.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { isGatherError, keyPrefixProblem, parsePublicKey } from '@gather/core';
import type { SettingValues } from './config-sources.js';

export type BundleSource =
  | { kind: 'file'; path: string }
  /** `s3://bucket/prefix` follows `<prefix>/latest`; `s3://bucket/key.tar` names one object. */
  | { kind: 's3'; bucket: string; prefix?: string; key?: string };

/** Parses `file:/path`, a plain path or `s3://bucket/prefix` (a key ending in `.tar` names one object). */
export function parseBundleSource(text: string): BundleSource | string {
  if (text.startsWith('s3://')) {
    const rest = text.slice('s3://'.length);
    const slash = rest.indexOf('/');
    const bucket = slash < 0 ? rest : rest.slice(0, slash);
    const path = slash < 0 ? '' : rest.slice(slash + 1).replace(/\/+$/, '');
    if (!bucket) return 'has no bucket: use s3://bucket/prefix';
    if (!path) return 'has no prefix: use s3://bucket/prefix (the agent follows <prefix>/latest)';
    if (path.endsWith('.tar')) return { kind: 's3', bucket, key: path };
    // fetcher-s3's own rule, so that the daemon refuses it at start rather than at every run.
    const problem = keyPrefixProblem(path);
    return problem ? `has a prefix that ${problem}: use s3://bucket/prefix` : { kind: 's3', bucket, prefix: path };
  }
  if (text.startsWith('file:')) {
    const path = text.slice('file:'.length).replace(/^\/\/(?=\/)/, '');
    if (!path) return 'has no path: use file:/path/to/check.tar';
    return { kind: 'file', path: resolve(path) };
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(text)) return `has an unsupported scheme: use file:/path or s3://bucket/prefix`;
  return { kind: 'file', path: resolve(text) };
}

export interface BundleSettings {
  /** The bundle source as written. */
  bundle: string | undefined;
  source: BundleSource | undefined;
  publicKeyPath: string | undefined;
  /** PEM of the public key, read and parsed. */
  publicKey: string | undefined;
}

export function loadBundleSettings(
  values: SettingValues,
  configFile: string,
  problems: string[],
  trusted: (key: string, path: string, what: string) => boolean,
): BundleSettings {
  const bundle = values.string('bundle');
  let source: BundleSource | undefined;
  if (bundle === undefined) {
    problems.push(`bundle: Missing --bundle <path|file:/path|s3://bucket/prefix> (or GATHER_BUNDLE, or "bundle" in ${configFile})`);
  } else {
    const parsed = parseBundleSource(bundle);
    if (typeof parsed === 'string') problems.push(`bundle: ${values.where('bundle')} "${bundle}" ${parsed}`);
    else source = parsed;
  }

  // Every bundle is verified: there is no unsigned mode, local or remote.
  const publicKeyPath = values.string('publicKey');
  let publicKey: string | undefined;
  if (publicKeyPath === undefined) {
    problems.push(
      `publicKey: Missing --public-key <file> (or GATHER_PUBLIC_KEY, or "publicKey" in ${configFile}): every bundle is verified`,
    );
  } else if (trusted('publicKey', publicKeyPath, 'the public key')) {
    try {
      publicKey = readFileSync(publicKeyPath, 'utf8');
      parsePublicKey(publicKey, `public key file ${publicKeyPath}`);
    } catch (error) {
      // A file that cannot be read has an errno code; one that is not an ed25519 public key says so itself.
      const code = isGatherError(error) ? undefined : (error as NodeJS.ErrnoException).code;
      problems.push(
        code
          ? `publicKey: Cannot read the public key file ${publicKeyPath} (${code}) named by ${values.where('publicKey')}`
          : `publicKey: ${(error as Error).message.replace(/^\[gather\] /, '')}`,
      );
      publicKey = undefined;
    }
  }

  return { bundle, source, publicKeyPath, publicKey };
}
