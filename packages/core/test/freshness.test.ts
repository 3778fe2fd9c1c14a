import { execFileSync } from 'node:child_process';
import { sign } from 'node:crypto';
import { lstatSync, truncateSync, mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  BundleExpiredError,
  BundleRefusedError,
  BundleReplayedError,
  MAX_BUNDLE_BYTES,
  MAX_PAYLOAD_BYTES,
  createFileFetcher,
  createMemoryExporter,
  createSequenceStateFile,
  loadBundlePayload,
  readBundleFile,
  run,
  verifyBundle,
} from '../src/index.js';
import { sequenceStatePath } from '../src/sequence.js';
import { check, makeBundle, makeKeys, tempDir, type BundleSpec as Spec } from './_fixtures.js';

const keys = makeKeys();
const stateDir = () => tempDir('gather-state-');

async function runBundle(spec: Partial<Spec>, state: ReturnType<typeof createSequenceStateFile>, now?: Date) {
  const dir = tempDir();
  const sentinel = join(dir, 'ran');
  const path = join(dir, 'check.tar');
  writeFileSync(
    path,
    makeBundle({ keys, checks: [check('abc', `touch ${sentinel}; echo '{"name":"a","type":"number","value":1}'`)], ...spec }),
  );
  const exporter = createMemoryExporter();
  let error: unknown;
  try {
    await run({
      fetcher: createFileFetcher({ path }),
      exporter,
      category: 'all',
      publicKey: keys.publicKeyPem,
      handleProcessSignals: false,
      sequenceState: state,
      ...(now ? { now: () => now } : {}),
    });
  } catch (caught) {
    error = caught;
  }
  let ran = true;
  try {
    statSync(sentinel);
  } catch {
    ran = false;
  }
  return { error, exporter, ran };
}

describe('replay protection (sequence)', () => {
  it('refuses a bundle older than the highest accepted one: bundle_replayed, no check run', async () => {
    const state = createSequenceStateFile(stateDir(), 'file:/srv/check.tar');
    expect((await runBundle({ sequence: 5 }, state)).ran).toBe(true);
    expect(await state.highest()).toBe(5);

    const replayed = await runBundle({ sequence: 4, version: 'old' }, state);
    expect(replayed.error).toBeInstanceOf(BundleReplayedError);
    expect(replayed.error).toBeInstanceOf(BundleRefusedError);
    expect((replayed.error as Error).message).toMatch(/sequence 4, older than sequence 5 already accepted.*gather-bundle rollback/);
    expect(replayed.ran).toBe(false);
    expect(replayed.exporter.errors).toMatchObject([{ kind: 'error', reason: 'bundle_replayed' }]);
    expect(await state.highest()).toBe(5);
  });

  it('accepts the same sequence again (an unchanged bundle) and a higher one, which it records', async () => {
    const state = createSequenceStateFile(stateDir(), 'file:/srv/check.tar');
    expect((await runBundle({ sequence: 7 }, state)).ran).toBe(true);
    expect((await runBundle({ sequence: 7 }, state)).ran).toBe(true);
    expect((await runBundle({ sequence: 9 }, state)).ran).toBe(true);
    expect(await state.highest()).toBe(9);
  });

  it('keeps one state per bundle source, in a root-only file written without following links', async () => {
    const dir = stateDir();
    const a = createSequenceStateFile(dir, 's3:aws:bucket/prod');
    const b = createSequenceStateFile(dir, 's3:aws:bucket/staging');
    await runBundle({ sequence: 10 }, a);
    expect(await b.highest()).toBeUndefined();
    const path = sequenceStatePath(dir, 's3:aws:bucket/prod');
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'bundle-sequence')).mode & 0o777).toBe(0o700);
    expect(JSON.parse(readFileSync(path, 'utf8'))).toMatchObject({ source: 's3:aws:bucket/prod', sequence: 10 });

    // A link planted in place of the state file is never followed: not read, not written through.
    const target = join(tempDir(), 'target');
    writeFileSync(target, JSON.stringify({ sequence: 1 }));
    const linked = sequenceStatePath(dir, 'file:/linked');
    mkdirSync(join(dir, 'bundle-sequence'), { recursive: true });
    symlinkSync(target, linked);
    const refused = await runBundle({ sequence: 3 }, createSequenceStateFile(dir, 'file:/linked'));
    expect((refused.error as Error).message).toMatch(/replay-protection state .* cannot be read \(ELOOP\)/);
    expect(refused.ran).toBe(false);
    expect(lstatSync(linked).isSymbolicLink()).toBe(true);
    expect(readFileSync(target, 'utf8')).toBe(JSON.stringify({ sequence: 1 }));
  });

  it('refuses a bundle without a sequence (made by an older bundler), saying to rebuild it', () => {
    const legacy = makeBundle({
      keys,
      checks: [check('abc', 'true')],
      tamper: (members) => {
        const manifest = JSON.parse(String(members[0]!.data)) as Record<string, unknown>;
        delete manifest.sequence;
        delete manifest.payload_bytes;
        const text = JSON.stringify(manifest);
        return [
          { name: 'manifest.json', data: text },
          { name: 'manifest.sig', data: sign(null, Buffer.from(text), keys.privateKey) },
          members[2]!,
        ];
      },
    });
    expect(() => verifyBundle(legacy, keys.publicKeyPem)).toThrow(
      /has no "sequence".*Rebuild and publish it with the current gather-bundle/,
    );
  });
});

describe('expiry', () => {
  it('refuses a bundle past its expires_at: bundle_expired, no check run', async () => {
    const state = createSequenceStateFile(stateDir(), 'file:/x');
    const expired = await runBundle({ expiresAt: '2026-03-01T00:00:00Z' }, state, new Date('2026-03-01T00:00:01Z'));
    expect(expired.error).toBeInstanceOf(BundleExpiredError);
    expect((expired.error as Error).message).toMatch(/expired at 2026-03-01T00:00:00Z \(this host's clock says 2026-03-01T00:00:01.000Z\)/);
    expect(expired.exporter.errors).toMatchObject([{ reason: 'bundle_expired' }]);
    expect(expired.ran).toBe(false);
    expect(await state.highest()).toBeUndefined();
    expect((await runBundle({ expiresAt: '2026-03-01T00:00:00Z' }, state, new Date('2026-02-28T23:59:59Z'))).ran).toBe(true);
  });
});

describe('bounded before parsed', () => {
  it('refuses an oversize bundle file from its size, without reading it (sparse 3 GiB file)', async () => {
    const path = join(tempDir(), 'huge.tar');
    writeFileSync(path, '');
    truncateSync(path, 3 * 1024 * 1024 * 1024);
    const before = process.memoryUsage().rss;
    await expect(readBundleFile(path, 'file:huge')).rejects.toThrow(
      new RegExp(`file:huge is ${3 * 1024 ** 3} bytes, over the ${MAX_BUNDLE_BYTES}-byte limit`),
    );
    expect(process.memoryUsage().rss - before).toBeLessThan(64 * 1024 * 1024);
  });

  it("refuses a FIFO in the bundle's place at once, instead of waiting in open() for a writer", async () => {
    const path = join(tempDir(), 'fifo.tar');
    execFileSync('mkfifo', [path]);
    await expect(readBundleFile(path, 'file:fifo')).rejects.toThrow(/file:fifo is not a regular file/);
  });

  it("reads a FIFO in a state file's place as damaged at once, instead of waiting in open() for a writer", async () => {
    const stateDir = tempDir();
    const path = sequenceStatePath(stateDir, 'file:x');
    mkdirSync(join(stateDir, 'bundle-sequence'), { mode: 0o700 });
    execFileSync('mkfifo', [path]);
    await expect(createSequenceStateFile(stateDir, 'file:x').highest()).rejects.toThrow(/cannot be read \(EINVAL\)/);
  });

  it('refuses a payload whose declared decoded size is over the limit before running the runner', () => {
    const bundle = makeBundle({ keys, checks: [check('abc', 'true')], payloadBytes: MAX_PAYLOAD_BYTES + 1 });
    const verified = verifyBundle(bundle, keys.publicKeyPem);
    expect(() => loadBundlePayload(verified)).toThrow(
      new RegExp(`declares a ${MAX_PAYLOAD_BYTES + 1}-byte checks payload, over the ${MAX_PAYLOAD_BYTES}-byte limit`),
    );
  });
});

describe('sequence state that cannot be written', () => {
  it('runs nothing and says the state dir must be writable', async () => {
    // An immutable directory: nothing to read, and nothing can be created in it, not even by root.
    const dir = stateDir();
    mkdirSync(join(dir, 'bundle-sequence'));
    execFileSync('chattr', ['+i', join(dir, 'bundle-sequence')]);
    try {
      const result = await runBundle({ sequence: 3 }, createSequenceStateFile(dir, 'file:/x'));
      expect((result.error as Error).message).toMatch(
        /Cannot record the accepted bundle sequence in .* \(EPERM\); the state dir must be writable/,
      );
      expect(result.ran).toBe(false);
    } finally {
      execFileSync('chattr', ['-i', join(dir, 'bundle-sequence')]);
    }
  });
});
