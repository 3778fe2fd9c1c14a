/**
 * Builds runner.js: a small self-contained script that carries the checks payload, compressed and masked,
 * and hands it back via `globalThis.gatherBundle.load()`. It must work in a bare V8 context (only ECMAScript
 * built-ins), so base64 decoding and the key stream are plain JS, and fflate's inflate is bundled in.
 *
 * The masking is obfuscation, not secrecy: the key is derived from the content and shipped in the runner.
 * It keeps check contents away from casual inspection (grep, strings, a glance in S3); the ed25519
 * signature over the manifest is what makes the bundle trustworthy.
 */
import { createHash } from 'node:crypto';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { zlibSync } from 'fflate';

/**
 * The runner's entry source, bundled from memory (esbuild stdin) so the output is the same whether this
 * package runs from src/ (tests) or dist/. `__DATA__` and `__KEY__` are replaced by literals.
 * The key stream (xorshift128, 4 bytes per step, little-endian) must match `mask()` below.
 */
const RUNNER_SOURCE = `
import { unzlibSync, strFromU8 } from 'fflate';

const DATA = __DATA__;
const KEY = __KEY__;
const SIZE = __SIZE__;

function decodeBase64(text) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  const table = new Uint8Array(128);
  for (let i = 0; i < 64; i++) table[alphabet.charCodeAt(i)] = i;
  let n = text.length;
  while (n > 0 && text.charCodeAt(n - 1) === 61) n--;
  const out = new Uint8Array((n * 3) >> 2);
  let acc = 0;
  let bits = 0;
  let o = 0;
  for (let i = 0; i < n; i++) {
    acc = ((acc << 6) | table[text.charCodeAt(i)]) & 0xffffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 255;
    }
  }
  return out;
}

function unmask(bytes, key) {
  let x = key[0] >>> 0, y = key[1] >>> 0, z = key[2] >>> 0, w = key[3] >>> 0;
  if ((x | y | z | w) === 0) w = 1;
  let word = 0;
  for (let i = 0; i < bytes.length; i++) {
    if ((i & 3) === 0) {
      const t = x ^ (x << 11);
      x = y; y = z; z = w;
      w = (w ^ (w >>> 19) ^ t ^ (t >>> 8)) >>> 0;
      word = w;
    }
    bytes[i] ^= (word >>> ((i & 3) * 8)) & 255;
  }
  return bytes;
}

// Inflates into a buffer one byte larger than the declared size: more output than declared fills it, and
// the extra is dropped, so memory stays bounded whatever the data holds.
globalThis.gatherBundle = Object.freeze({
  load(maxBytes) {
    if (maxBytes !== undefined && SIZE > maxBytes) throw new Error('the payload is ' + SIZE + ' bytes, over the ' + maxBytes + '-byte limit');
    const out = unzlibSync(unmask(decodeBase64(DATA), KEY), { out: new Uint8Array(SIZE + 1) });
    if (out.length !== SIZE) throw new Error('the payload does not inflate to its declared ' + SIZE + ' bytes');
    return JSON.parse(strFromU8(out));
  },
});
`;

/** XORs `bytes` in place with the xorshift128 key stream seeded by `key` (same as the runner's `unmask`). */
export function mask(bytes: Uint8Array, key: readonly number[]): Uint8Array {
  let x = (key[0] ?? 0) >>> 0;
  let y = (key[1] ?? 0) >>> 0;
  let z = (key[2] ?? 0) >>> 0;
  let w = (key[3] ?? 0) >>> 0;
  if ((x | y | z | w) === 0) w = 1;
  let word = 0;
  for (let i = 0; i < bytes.length; i++) {
    if ((i & 3) === 0) {
      const t = x ^ (x << 11);
      x = y;
      y = z;
      z = w;
      w = (w ^ (w >>> 19) ^ t ^ (t >>> 8)) >>> 0;
      word = w;
    }
    bytes[i] = (bytes[i] ?? 0) ^ ((word >>> ((i & 3) * 8)) & 255);
  }
  return bytes;
}

/** The masked, compressed payload as base64, and the key (four uint32) derived from the content. */
export function obfuscate(payloadJson: string): { data: string; key: number[] } {
  const digest = createHash('sha256').update('gather-bundle obfuscation key\0').update(payloadJson).digest();
  const key = [0, 4, 8, 12].map((offset) => digest.readUInt32LE(offset));
  const compressed = zlibSync(new TextEncoder().encode(payloadJson), { level: 9 });
  return { data: Buffer.from(mask(compressed, key)).toString('base64'), key };
}

/**
 * Bundles runner.js for `payloadJson` (esbuild: iife, neutral platform, es2022, minified). `declaredBytes`
 * (default: the payload's UTF-8 size, as in the manifest's `payload_bytes`) is only overridden by tests.
 */
export async function buildRunner(payloadJson: string, declaredBytes = Buffer.byteLength(payloadJson)): Promise<Buffer> {
  const { data, key } = obfuscate(payloadJson);
  const contents = RUNNER_SOURCE.replace('__DATA__', () => JSON.stringify(data))
    .replace('__KEY__', () => JSON.stringify(key))
    .replace('__SIZE__', () => String(declaredBytes));
  const here = dirname(fileURLToPath(import.meta.url));
  // Loaded on demand: esbuild is only needed to build, not to validate checks or print help.
  const { build } = await import('esbuild');
  const result = await build({
    stdin: { contents, resolveDir: here, sourcefile: 'runner.js', loader: 'js' },
    absWorkingDir: here,
    bundle: true,
    format: 'iife',
    platform: 'neutral',
    mainFields: ['module', 'main'],
    target: 'es2022',
    minify: true,
    legalComments: 'none',
    charset: 'ascii',
    write: false,
    logLevel: 'silent',
  });
  const output = result.outputFiles[0];
  if (!output) throw new Error('esbuild produced no output for runner.js');
  return Buffer.from(output.contents);
}
