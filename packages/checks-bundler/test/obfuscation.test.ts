import { describe, expect, it } from 'vitest';
import { buildBundle } from '../src/index.js';
import { FIXTURE, KEYS, evalRunner, fixtureChecks, members } from './_helpers.js';

/** Words nobody could guess from the format or the runner code: they can only come from the checks. */
const DISTINCTIVE = [
  'xmrig',
  'stratum+tcp',
  'stratum',
  'authorized_keys',
  'zebrafinch',
  'quarantine',
  'penguin',
  'uptime_seconds',
  'miner_found',
  'emit_result',
];

const SOURCES = {
  common: FIXTURE.common,
  'abuse/run-xmr': FIXTURE['abuse/run-xmr'],
  'abuse/run-ssh': FIXTURE['abuse/run-ssh'],
  'analytics/run-upt': FIXTURE['analytics/run-upt'],
};

function lines(text: string): string[] {
  return text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.length >= 6);
}

function words(text: string): string[] {
  return [...new Set(text.match(/[\p{L}\p{N}_]{4,}/gu) ?? [])];
}

/** A bundle built from unrelated checks: any word found in it comes from the format or the runner code. */
async function controlBundle(): Promise<Buffer> {
  const checksDir = await fixtureChecks({ common: ': noop\n', 'abuse/run-abc': '#!/bin/bash\n:\n' });
  return (await buildBundle({ checksDir, privateKeyPem: KEYS.privateKeyPem, created: '2024-06-01T00:00:00Z' })).bytes;
}

function contains(haystack: Buffer, needle: string): boolean {
  return haystack.includes(Buffer.from(needle, 'utf8'));
}

describe('obfuscation', () => {
  it('no non-trivial line of any script or of common appears in any bundle member or header', async () => {
    const { bytes } = await buildBundle({
      checksDir: await fixtureChecks(),
      privateKeyPem: KEYS.privateKeyPem,
      created: '2024-06-01T00:00:00Z',
    });
    const found: string[] = [];
    for (const [file, text] of Object.entries(SOURCES)) {
      for (const line of lines(text)) if (contains(bytes, line)) found.push(`${file}: ${line}`);
    }
    expect(found).toEqual([]);
  });

  it('no word (>= 4 chars) of any script or of common appears, except words the format itself always contains', async () => {
    const checksDir = await fixtureChecks();
    const { bytes } = await buildBundle({ checksDir, privateKeyPem: KEYS.privateKeyPem, created: '2024-06-01T00:00:00Z' });
    const control = await controlBundle();
    const all = words(Object.values(SOURCES).join('\n'));
    // The test is not vacuous: the decoded payload does contain every word.
    const decoded = JSON.stringify(evalRunner(members(bytes)['runner.js']!));
    for (const word of all) expect(decoded).toContain(word);

    const leaked = all.filter((word) => contains(bytes, word) && !contains(control, word));
    expect(leaked).toEqual([]);
    // The exemptions are generic words of the runner code (e.g. "function", "return"), never the distinctive ones.
    const exempt = all.filter((word) => contains(control, word));
    for (const word of DISTINCTIVE) expect(exempt).not.toContain(word);
    expect(exempt.length).toBeLessThan(all.length / 4);
  });

  it('distinctive keywords and "run-" are absent (case-insensitive), in every member and in the tar headers', async () => {
    const { bytes } = await buildBundle({
      checksDir: await fixtureChecks(),
      privateKeyPem: KEYS.privateKeyPem,
      created: '2024-06-01T00:00:00Z',
    });
    const lower = bytes.toString('latin1').toLowerCase();
    for (const word of [...DISTINCTIVE, 'run-', 'run-xmr', 'run-ssh', 'run-upt', 'héllo', '日本']) {
      expect(lower.includes(word.toLowerCase()) || contains(bytes, word), word).toBe(false);
    }
    // The manifest lists check ids (3 letters) in clear by design; nothing else about the checks.
    const manifest = members(bytes)['manifest.json']!.toString();
    expect(manifest).not.toMatch(/run-|timeout|script|prelude/);
  });

  it('the runner does not embed the payload as plain base64 or JSON either', async () => {
    const { bytes } = await buildBundle({
      checksDir: await fixtureChecks(),
      privateKeyPem: KEYS.privateKeyPem,
      created: '2024-06-01T00:00:00Z',
    });
    const runner = members(bytes)['runner.js']!.toString();
    for (const word of ['authorized_keys', 'stratum+tcp://', '#!/usr/bin/env bash']) {
      // The word's base64 at each of the three byte alignments (dropping the characters shared with neighbours).
      for (const k of [0, 1, 2]) {
        const b64 = Buffer.from('\0'.repeat(k) + word)
          .toString('base64')
          .replace(/=+$/, '')
          .slice(k ? 4 : 0, -2);
        expect(runner, `${word} @${k}`).not.toContain(b64);
      }
    }
    expect(runner).not.toContain('"checks"');
  });
});
