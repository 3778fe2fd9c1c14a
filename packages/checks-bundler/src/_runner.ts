/**
 * Builds runner.js: a small self-contained script that carries the checks payload, masked, and hands it back
 * via `globalThis.gatherBundle.load()`. It must work in a bare V8 context (only ECMAScript built-ins), so
 * base64 decoding and the key stream are plain JS.
 *
 * The payload is not compressed: the agent evaluates the runner on every run, and inflating in plain JS in a
 * fresh context cost 30-45 ms of CPU per run for the 80 KB of today's checks, against 5-13 ms to decode them
 * uncompressed (a runner of 109 KB instead of 40 KB). The payload is ASCII JSON (`asciiJson`), so the
 * decoded bytes are its characters and no UTF-8 decoder is needed either.
 *
 * The masking is obfuscation, not secrecy: the key is derived from the content and shipped in the runner.
 * It keeps check contents away from casual inspection (grep, strings, a glance in S3); the ed25519
 * signature over the manifest is what makes the bundle trustworthy.
 */
import { createHash } from 'node:crypto';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The runner's entry source, bundled from memory (esbuild stdin) so the output is the same whether this
 * package runs from src/ (tests) or dist/. `__DATA__`, `__KEY__` and `__SIZE__` are replaced by literals.
 * The key stream (xorshift128, 4 bytes per step, little-endian) must match `mask()` below.
 */
const RUNNER_SOURCE = `
const DATA = __DATA__;
const KEY = __KEY__;
const SIZE = __SIZE__;

// One pass over the base64 text: each byte is decoded and unmasked as it comes. At most SIZE + 1 bytes are
// decoded, so more data than declared fails without growing.
function decode() {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  const table = new Uint8Array(128);
  for (let i = 0; i < 64; i++) table[alphabet.charCodeAt(i)] = i;
  let n = DATA.length;
  while (n > 0 && DATA.charCodeAt(n - 1) === 61) n--;
  const out = new Uint8Array(SIZE + 1);
  let x = KEY[0] >>> 0, y = KEY[1] >>> 0, z = KEY[2] >>> 0, w = KEY[3] >>> 0;
  if ((x | y | z | w) === 0) w = 1;
  let word = 0, acc = 0, bits = 0, o = 0, high = 0;
  for (let i = 0; i < n && o <= SIZE; i++) {
    acc = ((acc << 6) | table[DATA.charCodeAt(i)]) & 0xffffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      if ((o & 3) === 0) {
        const t = x ^ (x << 11);
        x = y; y = z; z = w;
        w = (w ^ (w >>> 19) ^ t ^ (t >>> 8)) >>> 0;
        word = w;
      }
      const byte = ((acc >> bits) & 255) ^ ((word >>> ((o & 3) * 8)) & 255);
      high |= byte;
      out[o++] = byte;
    }
  }
  if (o !== SIZE) throw new Error('the payload does not decode to its declared ' + SIZE + ' bytes');
  if (high > 127) throw new Error('the payload is not ASCII JSON');
  let text = '';
  for (let i = 0; i < SIZE; i += 8192) text += String.fromCharCode.apply(null, out.subarray(i, Math.min(SIZE, i + 8192)));
  return text;
}

globalThis.gatherBundle = Object.freeze({
  load(maxBytes) {
    if (maxBytes !== undefined && SIZE > maxBytes) throw new Error('the payload is ' + SIZE + ' bytes, over the ' + maxBytes + '-byte limit');
    return JSON.parse(decode());
  },
});
`;

/**
 * JSON with every character past ASCII written as a \uXXXX escape: the same value, and one byte per
 * character, which is what the runner decodes.
 */
export function asciiJson(value: unknown): string {
  return JSON.stringify(value).replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

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

/** The masked payload as base64, and the key (four uint32) derived from the content. */
export function obfuscate(payloadJson: string): { data: string; key: number[] } {
  const digest = createHash('sha256').update('gather-bundle obfuscation key\0').update(payloadJson).digest();
  const key = [0, 4, 8, 12].map((offset) => digest.readUInt32LE(offset));
  return { data: Buffer.from(mask(Buffer.from(payloadJson, 'latin1'), key)).toString('base64'), key };
}

/**
 * Bundles runner.js for `payloadJson`, ASCII JSON from `asciiJson` (esbuild: iife, neutral platform, es2022,
 * minified). `declaredBytes` (default: the payload's size, as in the manifest's `payload_bytes`) is only
 * overridden by tests.
 */
export async function buildRunner(payloadJson: string, declaredBytes = payloadJson.length): Promise<Buffer> {
  if (/[\u0080-\uffff]/.test(payloadJson)) throw new Error('the runner payload must be ASCII JSON: make it with asciiJson()');
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
