import { createHash, randomBytes, sign, type KeyObject } from 'node:crypto';
import { rename, unlink, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import {
  BUNDLE_FORMAT,
  CATEGORIES,
  ChecksInvalidError,
  ConfigError,
  MAX_BUNDLE_BYTES,
  MAX_PAYLOAD_BYTES,
  MANIFEST_MEMBER,
  RUNNER_MEMBER,
  SIGNATURE_MEMBER,
  type BundleManifest,
  type Category,
} from '@gather/core';
import { SCOPE, collectChecksWith, type CollectOptions } from './collect.js';
import { loadSigningKey } from './keys.js';
import { asciiJson, buildRunner } from './_runner.js';
import { writeTar } from './_tar.js';

export { BUNDLE_FORMAT, MANIFEST_MEMBER, RUNNER_MEMBER, SIGNATURE_MEMBER };
const VERSION = /^[A-Za-z0-9._-]{1,64}$/;

export interface BuildOptions {
  /** The checks directory (common, abuse/run-xyz, analytics/run-xyz). */
  checksDir: string;
  /** The ed25519 private key, PKCS#8 PEM text. Exactly one of privateKeyPem / privateKeyPath. */
  privateKeyPem?: string | Buffer;
  /** Path of a file holding the ed25519 private key PEM. */
  privateKeyPath?: string;
  /**
   * The bundle's creation time (truncated to whole seconds). Default: the SOURCE_DATE_EPOCH environment
   * variable, else the newest modification time among the input files.
   */
  created?: string | Date;
  /** Default: `<YYYYMMDD of created>-<first 12 hex of the payload sha256>`. `[A-Za-z0-9._-]`, at most 64 chars. */
  version?: string;
  /**
   * The manifest's `sequence`: agents refuse a bundle with a lower one than they already accepted. A
   * non-negative integer; default: the creation time in Unix seconds (so SOURCE_DATE_EPOCH builds stay
   * reproducible and each newer commit gets a higher sequence).
   */
  sequence?: number;
  /** Seconds after `created` at which agents refuse the bundle (`expires_at`); default: never expires. */
  expiresInSec?: number;
  /** Environment to read SOURCE_DATE_EPOCH from (default: process.env). */
  env?: Record<string, string | undefined>;
}

export interface BuiltBundle {
  /** The bundle file (an uncompressed tar). */
  bytes: Buffer;
  manifest: BundleManifest;
  /** sha256 (hex) of `bytes`. */
  sha256: string;
}

export interface WriteOptions extends BuildOptions {
  /** Where to write the bundle; written to a temp file next to it and renamed, so it is never partial. */
  out: string;
}

function sha256(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Validates a bundle version (it becomes part of an S3 key). */
export function validateVersion(version: string, source = 'bundle version'): string {
  if (!VERSION.test(version) || /^\.+$/.test(version)) {
    throw new ConfigError(
      `Invalid ${source} ${JSON.stringify(version)}: use 1 to 64 characters among A-Z a-z 0-9 . _ - (e.g. 2024.06.01-1).`,
      { scope: SCOPE },
    );
  }
  return version;
}

/** Parses a `created` value (ISO-8601 string or Date) to whole seconds since the epoch. */
export function parseCreated(created: string | Date, source = 'created'): number {
  const ms = created instanceof Date ? created.getTime() : Date.parse(created);
  const text = created instanceof Date ? String(created) : created;
  if (typeof created === 'string' && !/^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2}))?$/.test(created)) {
    throw new ConfigError(`Invalid ${source} ${JSON.stringify(text)}: use an ISO-8601 date with a time zone, e.g. 2024-06-01T12:00:00Z.`, {
      scope: SCOPE,
    });
  }
  if (!Number.isFinite(ms) || ms < 0 || ms >= 253402300800000) {
    throw new ConfigError(`Invalid ${source} ${JSON.stringify(text)}: use a date between 1970 and 9999, e.g. 2024-06-01T12:00:00Z.`, {
      scope: SCOPE,
    });
  }
  return Math.floor(ms / 1000);
}

function parseSourceDateEpoch(value: string): number {
  if (!/^[0-9]{1,12}$/.test(value.trim())) {
    throw new ConfigError(
      `Invalid SOURCE_DATE_EPOCH ${JSON.stringify(value)}: it must be whole seconds since 1970, e.g. SOURCE_DATE_EPOCH=$(git log -1 --format=%ct).`,
      { scope: SCOPE },
    );
  }
  return parseCreated(new Date(Number(value.trim()) * 1000), 'SOURCE_DATE_EPOCH');
}

function isoSeconds(seconds: number): string {
  return new Date(seconds * 1000).toISOString().replace(/\.000Z$/, 'Z');
}

/** Validates a bundle sequence: a non-negative safe integer. */
export function validateSequence(sequence: number, source = 'sequence'): number {
  if (!Number.isSafeInteger(sequence) || sequence < 0) {
    throw new ConfigError(
      `Invalid ${source} ${JSON.stringify(sequence)}: use a whole number from 0 to ${Number.MAX_SAFE_INTEGER}, e.g. $(date +%s).`,
      {
        scope: SCOPE,
      },
    );
  }
  return sequence;
}

/** Parses a duration such as `30d`, `12h`, `90m`, `3600s` or `3600` (seconds) to seconds. */
export function parseDuration(text: string, source = 'duration'): number {
  const match = /^([1-9][0-9]{0,9})([smhdw]?)$/.exec(text.trim());
  const unit = { '': 1, s: 1, m: 60, h: 3600, d: 86400, w: 604800 }[match?.[2] ?? ''] ?? 1;
  const seconds = match ? Number(match[1]) * unit : NaN;
  if (!Number.isSafeInteger(seconds) || seconds > 10 * 366 * 86400) {
    throw new ConfigError(
      `Invalid ${source} ${JSON.stringify(text)}: use a number with a unit s, m, h, d or w, at most 10 years (e.g. 30d).`,
      {
        scope: SCOPE,
      },
    );
  }
  return seconds;
}

function tooLarge(what: string): never {
  throw new ChecksInvalidError(`${what}; agents would refuse it. Make the checks smaller.`, { scope: SCOPE, problems: [what] });
}

/** Builds a signed bundle in memory. Throws ChecksInvalidError (listing every problem) or ConfigError. */
export async function buildBundle(options: BuildOptions, collectOptions: CollectOptions = {}): Promise<BuiltBundle> {
  // Cheap option checks first, so a typo does not wait for the checks to be read.
  const env = options.env ?? process.env;
  const sourceDateEpoch = env.SOURCE_DATE_EPOCH;
  let createdSec: number | undefined =
    options.created !== undefined
      ? parseCreated(options.created)
      : sourceDateEpoch !== undefined && sourceDateEpoch !== ''
        ? parseSourceDateEpoch(sourceDateEpoch)
        : undefined;
  if (options.version !== undefined) validateVersion(options.version);
  if (options.sequence !== undefined) validateSequence(options.sequence);
  if (options.expiresInSec !== undefined && !(Number.isSafeInteger(options.expiresInSec) && options.expiresInSec > 0)) {
    throw new ConfigError(`Invalid expiresInSec ${options.expiresInSec}: use a positive whole number of seconds.`, { scope: SCOPE });
  }
  const key = await loadSigningKey(options);

  const collected = await collectChecksWith(options.checksDir, collectOptions);
  createdSec ??= Math.floor(collected.newestMtimeMs / 1000);
  const created = isoSeconds(createdSec);

  const payloadJson = asciiJson({ prelude: collected.prelude, checks: collected.checks });
  const payloadBytes = payloadJson.length;
  if (payloadBytes > MAX_PAYLOAD_BYTES) tooLarge(`the checks payload is ${payloadBytes} bytes, over the ${MAX_PAYLOAD_BYTES}-byte limit`);
  const version = options.version ?? `${created.slice(0, 10).replaceAll('-', '')}-${sha256(payloadJson).slice(0, 12)}`;
  validateVersion(version);

  const runner = await buildRunner(payloadJson);
  const checks = Object.fromEntries(
    CATEGORIES.map((category) => [
      category,
      collected.checks
        .filter((check) => check.category === category)
        .map((check) => check.id)
        .sort(),
    ]),
  ) as Record<Category, string[]>;
  const manifest: BundleManifest = {
    format: BUNDLE_FORMAT,
    version,
    created,
    sequence: options.sequence ?? createdSec,
    ...(options.expiresInSec !== undefined ? { expires_at: isoSeconds(createdSec + options.expiresInSec) } : {}),
    payload_bytes: payloadBytes,
    checks,
    files: { [RUNNER_MEMBER]: sha256(runner) },
  };
  return signedBundle(manifest, runner, key, createdSec);
}

/** The bundle file: the manifest, its ed25519 signature and the runner, in a tar dated `mtimeSec`. */
export function signedBundle(manifest: BundleManifest, runner: Buffer, key: KeyObject, mtimeSec: number): BuiltBundle {
  const manifestBytes = Buffer.from(JSON.stringify(manifest, null, 2) + '\n', 'utf8');
  const signature = sign(null, manifestBytes, key);
  const bytes = writeTar(
    [
      { name: MANIFEST_MEMBER, data: manifestBytes },
      { name: SIGNATURE_MEMBER, data: signature },
      { name: RUNNER_MEMBER, data: runner },
    ],
    mtimeSec,
  );
  if (bytes.length > MAX_BUNDLE_BYTES) tooLarge(`the bundle is ${bytes.length} bytes, over the ${MAX_BUNDLE_BYTES}-byte limit`);
  return { bytes, manifest, sha256: sha256(bytes) };
}

/**
 * Writes `bytes` to `out` atomically: a temp file in the same directory, renamed over `out` only once
 * complete. On failure the temp file is removed and `out` is untouched.
 */
export async function writeFileAtomic(out: string, bytes: Uint8Array, mode = 0o644): Promise<void> {
  const target = resolve(out);
  const temp = join(dirname(target), `.${basename(target)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    await writeFile(temp, bytes, { flag: 'wx', mode });
    await rename(temp, target);
  } catch (cause) {
    await unlink(temp).catch(() => undefined);
    const code = (cause as NodeJS.ErrnoException).code ?? 'error';
    const hint =
      code === 'ENOENT'
        ? `its directory ${dirname(target)} does not exist; create it first`
        : code === 'EISDIR'
          ? 'it is a directory; pass a file path'
          : 'check the path and permissions';
    throw new ConfigError(`Cannot write ${out} (${code}): ${hint}.`, { scope: SCOPE, cause });
  }
}

/** Builds the bundle and writes it to `options.out` (never leaving a partial file). */
export async function writeBundle(options: WriteOptions, collectOptions: CollectOptions = {}): Promise<BuiltBundle & { path: string }> {
  const built = await buildBundle(options, collectOptions);
  await writeFileAtomic(options.out, built.bytes);
  return { ...built, path: resolve(options.out) };
}
