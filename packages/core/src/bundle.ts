import { createHash, createPublicKey, verify, type KeyObject } from 'node:crypto';
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import vm from 'node:vm';
import { readTar } from './tar.js';
import { DURATION_RANGES, describeRange, durationProblem } from './durations.js';
import { BundleRefusedError, ConfigError } from './errors.js';
import { CATEGORIES, type BundleManifest, type BundlePayload, type BundledCheck, type Category } from './types.js';

export const MANIFEST_MEMBER = 'manifest.json';
export const SIGNATURE_MEMBER = 'manifest.sig';
export const RUNNER_MEMBER = 'runner.js';
export const BUNDLE_FORMAT = 1;
// The size limits of a bundle, shared by the bundler (which refuses to build past them) and the agent (which
// refuses before reading or decoding). Bundles are a few hundred KiB; anything near these is not ours.
/** The bundle file, checked with stat before it is read. */
export const MAX_BUNDLE_BYTES = 64 * 1024 * 1024;
/** The decoded checks payload (the JSON the runner decodes), declared in the signed manifest. */
export const MAX_PAYLOAD_BYTES = 8 * 1024 * 1024;
/** One check script, or checks/common. */
export const MAX_CHECK_BYTES = 256 * 1024;

export interface VerifiedBundle {
  manifest: BundleManifest;
  /** sha256 (hex) of the whole bundle file. */
  sha256: string;
  /** Every member but the manifest and signature, already checked against the manifest hashes. */
  members: Map<string, Buffer>;
}

const CHECK_ID = /^[a-z]{3}$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;
const MEMBER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

const HOW_TO_MAKE_PUBLIC_KEY =
  'Use the public half of the bundle signing key: the --out-public file of "gather-bundle keygen", or ' +
  '"openssl pkey -in private.pem -pubout -out public.pem".';

/**
 * Parses an ed25519 SPKI PEM public key. A private key is refused even though Node would derive the public
 * half from it: a signing key copied to every VM is a signing key leaked.
 */
export function parsePublicKey(pem: string | Buffer | KeyObject, source = 'public key'): KeyObject {
  const keyObject = typeof pem === 'object' && 'asymmetricKeyType' in pem ? pem : undefined;
  if (keyObject ? keyObject.type === 'private' : /PRIVATE KEY-----/.test(pem.toString('latin1'))) {
    throw new ConfigError(
      `${source}: this is a private key; ship only the public half ("openssl pkey -in private.pem -pubout -out public.pem") ` +
        'and keep the private key in CI only (make a new key pair if it was copied to hosts).',
    );
  }
  let key: KeyObject;
  try {
    key = keyObject ?? createPublicKey({ key: pem as string | Buffer, format: 'pem' });
  } catch (cause) {
    throw new ConfigError(
      `${source} is not an ed25519 public key (no PEM "BEGIN PUBLIC KEY" block could be read). ${HOW_TO_MAKE_PUBLIC_KEY}`,
      {
        cause,
      },
    );
  }
  if (key.type !== 'public' || key.asymmetricKeyType !== 'ed25519') {
    throw new ConfigError(
      `${source} is not an ed25519 public key (found an ${(key.asymmetricKeyType ?? 'unknown').toUpperCase()} ${key.type} key); gather bundles are ` +
        `signed with ed25519. ${HOW_TO_MAKE_PUBLIC_KEY}`,
    );
  }
  return key;
}

function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

function refuse(message: string): never {
  throw new BundleRefusedError(`Bundle refused: ${message}`);
}

function parseManifest(bytes: Buffer): BundleManifest {
  let manifest: unknown;
  try {
    manifest = JSON.parse(bytes.toString('utf8'));
  } catch {
    refuse('manifest.json is not valid JSON.');
  }
  if (typeof manifest !== 'object' || manifest === null) refuse('manifest.json is not an object.');
  const m = manifest as Record<string, unknown>;
  if (m.format !== BUNDLE_FORMAT) {
    refuse(`manifest format ${JSON.stringify(m.format)} is not supported (this agent reads format ${BUNDLE_FORMAT}). Upgrade the agent.`);
  }
  if (typeof m.version !== 'string' || !/^[A-Za-z0-9._-]{1,64}$/.test(m.version)) refuse('manifest has no valid "version".');
  if (typeof m.created !== 'string' || Number.isNaN(Date.parse(m.created))) refuse('manifest has no valid "created" date.');
  if (m.sequence === undefined || m.payload_bytes === undefined) {
    refuse(
      'its manifest has no "sequence" (a bundle made by an older gather-bundle, which cannot be protected against replay). ' +
        'Rebuild and publish it with the current gather-bundle.',
    );
  }
  if (!Number.isSafeInteger(m.sequence) || (m.sequence as number) < 0) refuse('manifest "sequence" is not a non-negative integer.');
  if (!Number.isSafeInteger(m.payload_bytes) || (m.payload_bytes as number) < 0)
    refuse('manifest "payload_bytes" is not a non-negative integer.');
  if (m.expires_at !== undefined && (typeof m.expires_at !== 'string' || Number.isNaN(Date.parse(m.expires_at)))) {
    refuse('manifest "expires_at" is not a date.');
  }
  const checks = m.checks as Record<string, unknown> | undefined;
  if (typeof checks !== 'object' || checks === null) refuse('manifest has no "checks".');
  const ids = new Set<string>();
  for (const category of CATEGORIES) {
    const list = checks[category];
    if (!Array.isArray(list)) refuse(`manifest "checks.${category}" is not a list.`);
    for (const id of list) {
      if (typeof id !== 'string' || !CHECK_ID.test(id)) refuse(`manifest lists an invalid check id ${JSON.stringify(id)}.`);
      if (ids.has(id)) refuse(`manifest lists check id "${id}" twice.`);
      ids.add(id);
    }
  }
  const files = m.files as Record<string, unknown> | undefined;
  if (typeof files !== 'object' || files === null) refuse('manifest has no "files".');
  for (const [name, hash] of Object.entries(files)) {
    if (!MEMBER_NAME.test(name) || name === MANIFEST_MEMBER || name === SIGNATURE_MEMBER) {
      refuse(`manifest lists an invalid member name ${JSON.stringify(name)}.`);
    }
    if (typeof hash !== 'string' || !SHA256_HEX.test(hash)) refuse(`manifest hash of "${name}" is not a sha256 hex digest.`);
  }
  if (!(RUNNER_MEMBER in files)) refuse(`manifest does not list "${RUNNER_MEMBER}".`);
  return m as unknown as BundleManifest;
}

/**
 * Verifies a bundle held in memory: tar structure, ed25519 signature over the manifest, and the sha256 of
 * every member. Throws `BundleRefusedError` naming the problem; nothing is written or executed.
 */
export function verifyBundle(bundle: Uint8Array, publicKey: string | Buffer | KeyObject): VerifiedBundle {
  const key = parsePublicKey(publicKey);
  const bytes = Buffer.from(bundle.buffer, bundle.byteOffset, bundle.byteLength);
  if (bytes.length > MAX_BUNDLE_BYTES) refuse(`it is ${bytes.length} bytes, over the ${MAX_BUNDLE_BYTES}-byte limit.`);
  const entries = readTar(bytes);
  const byName = new Map(entries.map((entry) => [entry.name, entry.data]));

  const manifestBytes = byName.get(MANIFEST_MEMBER);
  if (!manifestBytes) refuse(`it has no ${MANIFEST_MEMBER} (not a gather bundle?).`);
  const signature = byName.get(SIGNATURE_MEMBER);
  if (!signature) refuse(`it is unsigned (no ${SIGNATURE_MEMBER}). Build it with "gather-bundle build --key ...".`);
  if (signature.length !== 64 || !verify(null, manifestBytes, key, signature)) {
    refuse(
      'bad signature: the manifest was not signed by the private key matching this public key (tampered bundle or wrong --public-key).',
    );
  }

  const manifest = parseManifest(manifestBytes);
  const members = new Map<string, Buffer>();
  for (const [name, data] of byName) {
    if (name === MANIFEST_MEMBER || name === SIGNATURE_MEMBER) continue;
    const expected = manifest.files[name];
    if (expected === undefined) refuse(`member "${name}" is not listed in the signed manifest.`);
    if (sha256(data) !== expected) refuse(`manifest hash mismatch for "${name}" (tampered or corrupted bundle).`);
    members.set(name, data);
  }
  for (const name of Object.keys(manifest.files)) {
    if (!members.has(name)) refuse(`member "${name}" listed in the manifest is missing.`);
  }
  return { manifest, sha256: sha256(bytes), members };
}

/**
 * Reads a bundle file, refusing one over MAX_BUNDLE_BYTES from its size alone (a multi-GB file is never
 * read into memory). `source` names it in messages. Synchronous: a bundle is a few hundred KiB from the local
 * disk, read in one call, where each thread-pool round trip (open, stat, read, close) costs ~1 ms on a small VM.
 */
export async function readBundleFile(path: string, source: string = path): Promise<Buffer> {
  // O_NONBLOCK: a FIFO put in the bundle's place after it was checked must not hold the process in open().
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const info = fstatSync(fd);
    if (info.isFIFO()) refuse(`${source} is not a regular file (a FIFO).`);
    const { size } = info;
    if (size > MAX_BUNDLE_BYTES) refuse(`${source} is ${size} bytes, over the ${MAX_BUNDLE_BYTES}-byte limit (not a gather bundle).`);
    const bytes = Buffer.alloc(size);
    let filled = 0;
    while (filled < size) {
      const bytesRead = readSync(fd, bytes, filled, size - filled, filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    // A file that grew or shrank while read is not the file that was sized.
    if (filled !== size || readSync(fd, Buffer.alloc(1), 0, 1, size) !== 0) refuse(`${source} changed while it was read. Fetch it again.`);
    return bytes;
  } finally {
    closeSync(fd);
  }
}

/** Writes the verified members into `dir` (created with mode 0700). */
export async function extractBundle(verified: VerifiedBundle, dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  for (const [name, data] of verified.members) {
    // Names were validated as single path components, so join() cannot leave `dir`.
    await writeFile(join(dir, name), data, { flag: 'wx', mode: 0o600 });
  }
}

const RUNNER_TIMEOUT_MS = 10_000;

/**
 * Decodes the checks from a verified bundle's runner. The runner is evaluated in a fresh V8 context without
 * Node globals, and only a JSON string crosses back.
 */
export function loadBundlePayload(verified: VerifiedBundle): BundlePayload {
  const runner = verified.members.get(RUNNER_MEMBER);
  if (!runner) refuse(`it has no ${RUNNER_MEMBER}.`);
  const declared = verified.manifest.payload_bytes;
  if (declared > MAX_PAYLOAD_BYTES) {
    refuse(`its manifest declares a ${declared}-byte checks payload, over the ${MAX_PAYLOAD_BYTES}-byte limit; it was not decoded.`);
  }
  let json: unknown;
  try {
    // The runner decodes into a buffer of the declared size and fails past it, so memory stays bounded.
    json = vm.runInNewContext(
      `${runner.toString('utf8')}\n;JSON.stringify(globalThis.gatherBundle.load(${declared}));`,
      Object.create(null),
      { timeout: RUNNER_TIMEOUT_MS, filename: RUNNER_MEMBER },
    );
  } catch (cause) {
    throw new BundleRefusedError(`Bundle refused: its runner failed to decode the checks (${(cause as Error).message}).`, { cause });
  }
  if (typeof json !== 'string') refuse('its runner returned no payload.');
  return validatePayload(JSON.parse(json), verified.manifest);
}

function validatePayload(payload: unknown, manifest: BundleManifest): BundlePayload {
  const p = payload as Partial<BundlePayload> | null;
  if (!p || typeof p.prelude !== 'string' || !Array.isArray(p.checks)) refuse('runner payload has no prelude or checks.');
  const checks: BundledCheck[] = [];
  const listed = new Map<string, Category>();
  for (const category of CATEGORIES) for (const id of manifest.checks[category]) listed.set(id, category);
  for (const check of p.checks as unknown[]) {
    const c = check as Partial<BundledCheck> | null;
    if (!c || typeof c.id !== 'string' || typeof c.script !== 'string' || !c.category) refuse('runner payload has a malformed check.');
    if (listed.get(c.id) !== c.category) refuse(`runner check "${c.id}" (${c.category}) is not in the signed manifest.`);
    listed.delete(c.id);
    const timeoutSec = c.timeoutSec;
    if (timeoutSec !== undefined && durationProblem(timeoutSec, DURATION_RANGES.checkTimeoutSec) !== undefined) {
      refuse(`runner check "${c.id}" has a timeout outside ${describeRange(DURATION_RANGES.checkTimeoutSec)}.`);
    }
    checks.push({ id: c.id, category: c.category, script: c.script, ...(timeoutSec ? { timeoutSec } : {}) });
  }
  if (listed.size > 0) refuse(`checks ${[...listed.keys()].join(', ')} are in the manifest but not in the runner.`);
  return { prelude: p.prelude, checks };
}
