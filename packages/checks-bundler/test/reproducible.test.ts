import { cp, readFile, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildBundle } from '../src/index.js';
import { FIXTURE, KEYS, fixtureChecks, members, tempDir } from './_helpers.js';

const FILES = ['common', 'abuse/run-xmr', 'abuse/run-ssh', 'analytics/run-upt', 'README.md'];

async function setMtimes(checksDir: string, iso: string): Promise<void> {
  for (const rel of FILES) await utimes(join(checksDir, rel), new Date(iso), new Date(iso));
}

describe('reproducibility', () => {
  it('building the same directory twice gives byte-identical bundles', async () => {
    const checksDir = await fixtureChecks();
    const a = await buildBundle({ checksDir, privateKeyPem: KEYS.privateKeyPem, env: {} });
    const b = await buildBundle({ checksDir, privateKeyPem: KEYS.privateKeyPem, env: {} });
    expect(b.bytes.equals(a.bytes)).toBe(true);
    expect(b.sha256).toBe(a.sha256);
  });

  it('a copy of the directory (same contents and mtimes, another path) gives byte-identical bundles', async () => {
    const original = await fixtureChecks();
    await setMtimes(original, '2024-02-03T04:05:06.789Z');
    const copy = join(await tempDir(), 'elsewhere', 'checks');
    await cp(original, copy, { recursive: true, preserveTimestamps: true });
    const a = await buildBundle({ checksDir: original, privateKeyPem: KEYS.privateKeyPem, env: {} });
    const b = await buildBundle({ checksDir: copy, privateKeyPem: KEYS.privateKeyPem, env: {} });
    expect(a.manifest.created).toBe('2024-02-03T04:05:06Z');
    expect(b.bytes.equals(a.bytes)).toBe(true);
  });

  it('with SOURCE_DATE_EPOCH, file mtimes do not matter', async () => {
    const first = await fixtureChecks();
    const second = await fixtureChecks();
    await setMtimes(first, '2020-01-01T00:00:00Z');
    await setMtimes(second, '2022-06-06T06:06:06Z');
    const env = { SOURCE_DATE_EPOCH: '1717243200' };
    const a = await buildBundle({ checksDir: first, privateKeyPem: KEYS.privateKeyPem, env });
    const b = await buildBundle({ checksDir: second, privateKeyPem: KEYS.privateKeyPem, env });
    expect(a.manifest.created).toBe('2024-06-01T12:00:00Z');
    expect(b.bytes.equals(a.bytes)).toBe(true);
    // ...and it is the same bundle as an explicit --created of that instant.
    const c = await buildBundle({ checksDir: first, privateKeyPem: KEYS.privateKeyPem, created: '2024-06-01T12:00:00Z', env: {} });
    expect(c.bytes.equals(a.bytes)).toBe(true);
  });

  it('changing one byte of one script changes the runner, the version and the bundle', async () => {
    const checksDir = await fixtureChecks();
    const created = '2024-06-01T00:00:00Z';
    const before = await buildBundle({ checksDir, privateKeyPem: KEYS.privateKeyPem, created });
    const path = join(checksDir, 'analytics/run-upt');
    const text = await readFile(path, 'utf8');
    expect(text).toBe(FIXTURE['analytics/run-upt']);
    await writeFile(path, text.replace('int($1)', 'int($2)'));
    const after = await buildBundle({ checksDir, privateKeyPem: KEYS.privateKeyPem, created });
    expect(after.bytes.equals(before.bytes)).toBe(false);
    expect(members(after.bytes)['runner.js']!.equals(members(before.bytes)['runner.js']!)).toBe(false);
    expect(after.manifest.version).not.toBe(before.manifest.version);
    expect(after.manifest.files['runner.js']).not.toBe(before.manifest.files['runner.js']);
  });

  it('changing only common (the prelude) changes the bundle too', async () => {
    const checksDir = await fixtureChecks();
    const created = '2024-06-01T00:00:00Z';
    const before = await buildBundle({ checksDir, privateKeyPem: KEYS.privateKeyPem, created });
    await writeFile(join(checksDir, 'common'), FIXTURE.common + '# one more line\n');
    const after = await buildBundle({ checksDir, privateKeyPem: KEYS.privateKeyPem, created });
    expect(after.sha256).not.toBe(before.sha256);
  });
});
