// Builds gather bundles inline for tests, without the bundler (which depends on core). The runner here
// is a plain, unobfuscated script: core only relies on the runner contract, not on how it hides scripts.
import { createHash, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import type { BundledCheck, BundleManifest } from '../types.js';

export interface TarEntry {
  name: string;
  data?: Buffer | string;
  /** tar typeflag; '0' regular file, '2' symlink, '3' char device, '5' directory. */
  type?: string;
  linkname?: string;
}

export function tar(entries: TarEntry[]): Buffer {
  const blocks: Buffer[] = [];
  for (const entry of entries) {
    const data = Buffer.from(entry.data ?? '');
    const header = Buffer.alloc(512);
    header.write(entry.name, 0, 100, 'utf8');
    header.write('0000644\0', 100);
    header.write('0000000\0', 108);
    header.write('0000000\0', 116);
    header.write(data.length.toString(8).padStart(11, '0') + '\0', 124);
    header.write('00000000000\0', 136);
    header.write('        ', 148);
    header.write(entry.type ?? '0', 156);
    if (entry.linkname) header.write(entry.linkname, 157, 100);
    header.write('ustar\0' + '00', 257);
    let sum = 0;
    for (const byte of header) sum += byte;
    header.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
    blocks.push(header, data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

export interface Keys {
  privateKey: KeyObject;
  publicKeyPem: string;
}

export function makeKeys(): Keys {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { privateKey, publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
}

const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

export interface BundleSpec {
  keys: Keys;
  prelude?: string;
  checks: BundledCheck[];
  version?: string;
  /** Default 1. */
  sequence?: number;
  expiresAt?: string;
  /** Default: the size of the payload JSON. */
  payloadBytes?: number;
  /** Rewrites members before the tar is made, to build tampered bundles. */
  tamper?: (members: TarEntry[]) => TarEntry[];
}

export function runnerFor(prelude: string, checks: BundledCheck[]): string {
  return `globalThis.gatherBundle = { load: () => (${JSON.stringify({ prelude, checks })}) };`;
}

export function makeBundle(spec: BundleSpec): Buffer {
  const runner = runnerFor(spec.prelude ?? '', spec.checks);
  const manifest: BundleManifest = {
    format: 1,
    version: spec.version ?? 'test-1',
    created: '2026-01-01T00:00:00.000Z',
    sequence: spec.sequence ?? 1,
    ...(spec.expiresAt ? { expires_at: spec.expiresAt } : {}),
    payload_bytes: spec.payloadBytes ?? Buffer.byteLength(JSON.stringify({ prelude: spec.prelude ?? '', checks: spec.checks })),
    checks: {
      abuse: spec.checks.filter((c) => c.category === 'abuse').map((c) => c.id),
      analytics: spec.checks.filter((c) => c.category === 'analytics').map((c) => c.id),
    },
    files: { 'runner.js': sha256(runner) },
  };
  const manifestText = JSON.stringify(manifest, null, 2) + '\n';
  let members: TarEntry[] = [
    { name: 'manifest.json', data: manifestText },
    { name: 'manifest.sig', data: sign(null, Buffer.from(manifestText), spec.keys.privateKey) },
    { name: 'runner.js', data: runner },
  ];
  if (spec.tamper) members = spec.tamper(members);
  return tar(members);
}
