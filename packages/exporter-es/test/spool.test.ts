import { mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { processStartTime, type LockTakeover } from '@gather/core';
import { Spool } from '../src/spool.js';

const record = (i: number, pad = '') =>
  JSON.stringify({ index: 'gather-results', id: `run:abc:${i}`, doc: { run_id: 'run', host: { hostname: 'vm-1' }, n: i, pad } });
const fixedNow = () => new Date('2026-01-01T00:00:00.000Z');

let dir: string;
/** Spools a test opened: closed after it, because Node 26 fails a run when a FileHandle is closed by GC. */
let opened: Spool[] = [];
const openSpool = async (...args: Parameters<typeof Spool.open>) => {
  const spool = await Spool.open(...args);
  opened.push(spool);
  return spool;
};
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'gather-spool-'));
});
afterEach(async () => {
  await Promise.all(opened.map((spool) => spool.close()));
  opened = [];
  await rm(dir, { recursive: true, force: true });
});

describe('Spool', () => {
  it('appends records to an NDJSON segment and reads them back in order', async () => {
    const spool = await openSpool(dir, { maxBytes: 1 << 20, segmentBytes: 1 << 20 });
    expect(spool.empty).toBe(true);
    expect(await spool.append([record(0), record(1)])).toEqual({ stored: true, dropped: [] });
    await spool.append([record(2)]);
    const [segment, ...others] = await spool.pending();
    expect(others).toEqual([]);
    expect(await readdir(dir)).toEqual(['spool-000000000001.ndjson', 'spool.lock']);
    const { records, corrupt } = await spool.read(segment!);
    expect(corrupt).toBe(0);
    expect(records.map((r) => r.id)).toEqual(['run:abc:0', 'run:abc:1', 'run:abc:2']);
    expect(records[1]).toMatchObject({ index: 'gather-results', doc: { n: 1 } });
  });

  it('starts a new segment past segmentBytes, never splitting an append', async () => {
    const spool = await openSpool(dir, { maxBytes: 1 << 20, segmentBytes: 300 });
    for (let i = 0; i < 6; i += 2) await spool.append([record(i, 'x'.repeat(60)), record(i + 1, 'x'.repeat(60))]);
    const segments = await spool.pending();
    expect(segments.length).toBe(3);
    const ids = [];
    for (const segment of segments) ids.push(...(await spool.read(segment)).records.map((r) => r.id));
    expect(ids).toEqual([0, 1, 2, 3, 4, 5].map((i) => `run:abc:${i}`));
  });

  it('finds the segments of an earlier process on open (not its own), and appends to a new segment', async () => {
    const first = await openSpool(dir, { maxBytes: 1 << 20, segmentBytes: 1 << 20 });
    await first.append([record(0)]);
    await first.close();
    const second = await openSpool(dir, { maxBytes: 1 << 20, segmentBytes: 1 << 20 });
    expect(second.empty).toBe(false);
    await second.append([record(1)]);
    const segments = await second.pending();
    expect(segments.map((s) => [s.seq, s.own])).toEqual([
      [1, false],
      [2, true],
    ]);
  });

  it('ignores a torn last line (a crash mid-append, never acknowledged) and counts unreadable lines', async () => {
    await writeFile(join(dir, 'spool-000000000007.ndjson'), `${record(0)}\nnot json\n${record(1)}\n{"index":"gather-res`);
    const spool = await openSpool(dir, { maxBytes: 1 << 20, segmentBytes: 1 << 20 });
    const [segment] = await spool.pending();
    const { records, corrupt } = await spool.read(segment!);
    expect(records.map((r) => r.id)).toEqual(['run:abc:0', 'run:abc:1']);
    expect(corrupt).toBe(1);
    await spool.append([record(2)]);
    expect((await spool.pending()).map((s) => s.seq)).toEqual([7, 8]);
  });

  it('counts damage at the end of a segment (not a torn record) as unreadable', async () => {
    await writeFile(
      join(dir, 'spool-000000000009.ndjson'),
      Buffer.concat([Buffer.from(`${record(0)}\n`), Buffer.from([0xde, 0xad, 0xbe, 0xef])]),
    );
    const spool = await openSpool(dir, { maxBytes: 1 << 20, segmentBytes: 1 << 20 });
    const [segment] = await spool.pending();
    const { records, corrupt } = await spool.read(segment!);
    expect(records.map((r) => r.id)).toEqual(['run:abc:0']);
    expect(corrupt).toBe(1);
  });

  it('deletes a segment once delivered', async () => {
    const spool = await openSpool(dir, { maxBytes: 1 << 20, segmentBytes: 1 << 20 });
    await spool.append([record(0)]);
    const [segment] = await spool.pending();
    await spool.remove(segment!);
    expect(spool.empty).toBe(true);
    expect(spool.bytes).toBe(0);
    expect(await readdir(dir)).toEqual(['spool.lock']);
  });

  it('tells how many records of a dropped segment are current-state writes (they count in no total of a run)', async () => {
    const latest = JSON.stringify({ index: 'gather-latest', id: 'vm-1:a', op: 'index', version: 1, doc: { pad: 'x'.repeat(200) } });
    const line = record(0, 'x'.repeat(200));
    const size = Buffer.byteLength(line) + Buffer.byteLength(latest) + 2;
    const spool = await openSpool(dir, { maxBytes: size, segmentBytes: size, now: fixedNow });
    expect((await spool.append([line, latest])).dropped).toEqual([]);
    const outcome = await spool.append([record(1, 'x'.repeat(200))]);
    expect(outcome.dropped.map((d) => [d.segment.seq, d.docs, d.currentState])).toEqual([[1, 2, 1]]);
  });

  it('stays within maxBytes by dropping the oldest segment, and leaves a report of the drop', async () => {
    const line = record(0, 'x'.repeat(200));
    const size = Buffer.byteLength(line) + 1;
    const spool = await openSpool(dir, { maxBytes: size * 3, segmentBytes: size, now: fixedNow });
    for (let i = 0; i < 3; i++) expect((await spool.append([record(i, 'x'.repeat(200))])).dropped).toEqual([]);
    const outcome = await spool.append([record(3, 'x'.repeat(200))]);
    expect(outcome.stored).toBe(true);
    expect(outcome.dropped.map((d) => [d.segment.seq, d.docs])).toEqual([[1, 1]]);
    expect(spool.bytes).toBeLessThanOrEqual(size * 3);
    const [report] = spool.pendingReports();
    expect(report).toMatchObject({
      segment: 'spool-000000000001.ndjson',
      docs: 1,
      first_id: 'run:abc:0',
      last_id: 'run:abc:0',
      sample: { run_id: 'run', host: { hostname: 'vm-1' } },
      at: '2026-01-01T00:00:00.000Z',
    });
    const ids = [];
    for (const segment of await spool.pending()) ids.push(...(await spool.read(segment)).records.map((r) => r.id));
    expect(ids).toEqual(['run:abc:1', 'run:abc:2', 'run:abc:3']);

    // the report survives a restart until delivered
    await spool.close();
    const reopened = await openSpool(dir, { maxBytes: size * 3, segmentBytes: size });
    expect(reopened.pendingReports()).toEqual([report]);
    await reopened.removeReport(report!);
    expect(reopened.pendingReports()).toEqual([]);
    expect((await readdir(dir)).filter((f) => f.startsWith('dropped-'))).toEqual([]);
  });

  it('is used by one process at a time: a live owner locks it out, a dead one (crash) does not', async () => {
    const spool = await openSpool(dir, { maxBytes: 1 << 20, segmentBytes: 1 << 20 });
    await expect(Spool.open(dir, { maxBytes: 1 << 20, segmentBytes: 1 << 20 })).rejects.toThrow(
      `${dir} is in use by process ${process.pid}`,
    );
    await spool.close();
    await writeFile(join(dir, 'spool.lock'), '999999999');
    const taken = await openSpool(dir, { maxBytes: 1 << 20, segmentBytes: 1 << 20 });
    expect(JSON.parse(await readFile(join(dir, 'spool.lock'), 'utf8'))).toMatchObject({
      pid: process.pid,
      start: processStartTime(process.pid),
    });
    await taken.close();
    expect(await readdir(dir)).toEqual([]);
  });

  it('takes over (and reports) a lock whose pid was reused by a live process or that predates a reboot: delivery is never blocked by a leftover file', async () => {
    const leftovers = [
      { pid: 1, start: '0', purpose: 'spool', since: '2020-01-01T00:00:00Z', token: 'x' }, // pid 1 is alive, but started at another time
      { pid: process.pid, start: '0', purpose: 'spool', since: '2020-01-01T00:00:00Z', token: 'x' }, // our own pid after an unclean reboot
      { pid: 1, start: processStartTime(1), boot: 'another-boot', purpose: 'spool', since: '2020-01-01T00:00:00Z', token: 'x' },
    ];
    for (const leftover of leftovers) {
      await writeFile(join(dir, 'spool.lock'), JSON.stringify(leftover));
      const takeovers: LockTakeover[] = [];
      const spool = await openSpool(dir, { maxBytes: 1 << 20, segmentBytes: 1 << 20, onLockTakeover: (t) => takeovers.push(t) });
      expect(takeovers).toEqual([
        expect.objectContaining({ path: join(dir, 'spool.lock'), previous: expect.objectContaining({ pid: leftover.pid }) }),
      ]);
      expect(await spool.append([record(0)])).toEqual({ stored: true, dropped: [] });
      await spool.close();
    }
  });

  it('never writes or reads through a symbolic link planted in the spool directory: the victim is untouched', async () => {
    const victimDir = await mkdtemp(join(tmpdir(), 'gather-victim-'));
    try {
      const victim = join(victimDir, 'shadow');
      await writeFile(victim, 'precious\n');
      // Where old versions wrote a drop report's temp file, and a segment name the spool would read.
      for (const name of [
        'dropped-000000000002.json.tmp',
        'dropped-000000000003.json.tmp',
        'spool-000000000001.ndjson',
        'spool.lock.break',
      ]) {
        await symlink(victim, join(dir, name));
      }
      const spool = await openSpool(dir, { maxBytes: 600, segmentBytes: 300 });
      expect(spool.empty).toBe(true); // the planted segment is not read
      for (let i = 0; i < 6; i++) await spool.append([record(i, 'z'.repeat(150))]); // drops segments: writes reports
      expect(spool.pendingReports().length).toBeGreaterThan(0);
      await spool.close();
      expect(await readFile(victim, 'utf8')).toBe('precious\n');
    } finally {
      await rm(victimDir, { recursive: true, force: true });
    }
  });

  it('refuses (without dropping anything) records that alone exceed maxBytes', async () => {
    const spool = await openSpool(dir, { maxBytes: 1024, segmentBytes: 1024 });
    await spool.append([record(0)]);
    expect(await spool.append([record(1, 'x'.repeat(2000))])).toEqual({ stored: false, dropped: [] });
    expect((await spool.pending()).length).toBe(1);
  });

  it('serialises concurrent appends: every record is written once, whole', async () => {
    const spool = await openSpool(dir, { maxBytes: 1 << 20, segmentBytes: 2000 });
    await Promise.all(Array.from({ length: 20 }, (_, i) => spool.append([record(i, 'y'.repeat(100))])));
    const ids = [];
    for (const segment of await spool.pending()) {
      const { records, corrupt } = await spool.read(segment);
      expect(corrupt).toBe(0);
      ids.push(...records.map((r) => r.id));
    }
    expect(ids.sort()).toEqual(Array.from({ length: 20 }, (_, i) => `run:abc:${i}`).sort());
    const text = await readFile(join(dir, 'spool-000000000001.ndjson'), 'utf8');
    expect(text.endsWith('\n')).toBe(true);
  });
});
