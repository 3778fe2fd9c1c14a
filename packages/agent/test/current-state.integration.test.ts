// Differential results through the real Elasticsearch exporter: daily history, gather-latest, gather-hosts.
import { randomBytes } from 'node:crypto';
import { readdir, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { Client } from '@elastic/elasticsearch';
import type { ErrorDocument, ResultDocument, RunSummaryDocument } from '@gather/core';
import { createEsExporter, type EsExporterOptions } from '@gather/exporter-es';
import { afterAll, describe, expect, it } from 'vitest';
import { DifferentialResults, readHostHistory, saveHostHistory } from '../src/differential.js';
import { tempDir } from './_helpers.js';

const url = process.env.GATHER_ES_URL;
if (!url) throw new Error('GATHER_ES_URL is not set: run through vitest (globalSetup starts Elasticsearch) or export it');
const es = new Client({ node: url, requestTimeout: 60_000 });
const prefixes: string[] = [];

function names() {
  const base = `gather-cs-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
  prefixes.push(base);
  return {
    resultsIndex: `${base}-results`,
    errorsIndex: `${base}-errors`,
    runsIndex: `${base}-runs`,
    latestIndex: `${base}-latest`,
    hostsIndex: `${base}-hosts`,
  };
}

afterAll(async () => {
  for (const base of prefixes) {
    await es.indices.delete({ index: `${base}-*`, ignore_unavailable: true, allow_no_indices: true }).catch(() => undefined);
    await es.indices.deleteIndexTemplate({ name: `${base}-*` }).catch(() => undefined);
  }
  await es.close();
});

type Values = Record<string, unknown>;
const host = { hostname: 'vm-cs', id: 'cs0123456789abcdef0123456789abcd' };

/** One run as core would make it: each `check: { name: value }` a check's results, at time `at`. */
async function run(
  indices: ReturnType<typeof names>,
  stateDir: string,
  at: string,
  checks: Record<string, Values>,
  extra: Partial<EsExporterOptions> = {},
  failing: string[] = [],
) {
  const runId = `run-${at}`;
  const diff = new DifferentialResults({ stateDir, mode: 'differential', snapshotIntervalSec: 86_400, now: () => new Date(at) });
  const exporter = diff.wrap(
    createEsExporter({ node: url!, ...indices, currentState: true, indexSettings: { number_of_replicas: 0 }, maxRetries: 0, ...extra }),
  );
  const base = { '@timestamp': at, run_id: runId, host, agent: { version: '1.0.0' }, bundle: { version: 'v1', sha256: 's' } };
  for (const [check, values] of Object.entries(checks)) {
    const results: ResultDocument[] = Object.entries(values).map(
      ([name, value]) =>
        ({
          kind: 'result',
          ...base,
          category: 'abuse',
          check,
          duration_ms: 1,
          name,
          type: typeof value === 'number' ? 'number' : 'boolean',
          value,
        }) as ResultDocument,
    );
    await exporter.exportResults(results);
  }
  for (const check of failing) {
    await exporter.exportErrors([
      { kind: 'error', ...base, category: 'abuse', check, reason: 'timeout', message: 'timed out after 60 s' } as ErrorDocument,
    ]);
  }
  const summary: RunSummaryDocument = {
    kind: 'run',
    ...base,
    category: 'abuse',
    outcome: 'ok',
    checks: { run: 1, ok: 1, failed: 0, timed_out: 0 },
    results: 0,
    errors: 0,
    export: { delivered: 0, spooled: 0, failed: 0, retried: 0, dead_lettered: 0, dropped: 0, unreadable: 0, recovered: 0 },
    spooled: 0,
    bytes_fetched: 0,
    duration_ms: 1,
    peak_rss_bytes: 1,
    ...diff.summaryFields(),
    ...(await readHostHistory(stateDir)),
  };
  await exporter.flush();
  await exporter.exportRunSummary!(summary);
  const totals = await exporter.close();
  const state = await diff.commit(totals, false);
  await saveHostHistory(stateDir, await readHostHistory(stateDir), summary);
  return { totals, state, counts: diff.summaryFields().changes! };
}

async function latest(index: string): Promise<Record<string, unknown>> {
  await es.indices.refresh({ index, ignore_unavailable: true });
  const found = await es.search<{ name: string; value: unknown }>({ index, size: 1000, ignore_unavailable: true });
  return Object.fromEntries(found.hits.hits.map((h) => [h._source!.name, h._source!.value]));
}

async function changes(resultsIndex: string): Promise<string[]> {
  await es.indices.refresh({ index: `${resultsIndex}-2*`, allow_no_indices: true });
  const found = await es.search<{ name: string; value: unknown; change: string; '@timestamp': string }>({
    index: `${resultsIndex}-2*`,
    size: 1000,
    allow_no_indices: true,
    sort: [{ '@timestamp': 'asc' }, { name: 'asc' }],
  });
  return found.hits.hits.map(
    (h) => `${h._source!['@timestamp'].slice(11, 16)} ${h._source!.change}:${h._source!.name}=${JSON.stringify(h._source!.value)}`,
  );
}

/** A loopback port nothing listens on: Elasticsearch "down". */
async function deadPort(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return `http://127.0.0.1:${port}`;
}

describe('differential results in Elasticsearch', () => {
  it('a sequence of runs with additions, changes and removals: history in daily indices, gather-latest current, gather-hosts per host', async () => {
    const indices = names();
    const state = tempDir();
    await run(indices, state, '2026-11-30T23:50:00.000Z', {
      abc: { 'abuse.miner.detected': false, 'proc.count': 10 },
      def: { 'net.ports': 3 },
    });
    await run(indices, state, '2026-12-01T00:05:00.000Z', {
      abc: { 'abuse.miner.detected': true, 'proc.count': 10 },
      def: { 'net.ports': 3, 'net.udp': 1 },
    });
    const third = await run(indices, state, '2026-12-01T00:20:00.000Z', {
      abc: { 'abuse.miner.detected': true, 'proc.count': 10 },
      def: { 'net.ports': 3 },
    });
    expect(third.counts).toMatchObject({ removed: 1, unchanged: 3, added: 0, changed: 0 });
    // A check that failed removes nothing.
    await run(indices, state, '2026-12-01T00:35:00.000Z', { abc: { 'abuse.miner.detected': true, 'proc.count': 10 } }, {}, ['def']);

    expect(await changes(indices.resultsIndex)).toEqual([
      '23:50 snapshot:abuse.miner.detected=false',
      '23:50 snapshot:net.ports=3',
      '23:50 snapshot:proc.count=10',
      '00:05 changed:abuse.miner.detected=true',
      '00:05 added:net.udp=1',
      '00:20 removed:net.udp=1',
    ]);
    // A daily boundary: the documents are in the index of their own UTC day.
    const days = (await es.cat.indices({ index: `${indices.resultsIndex}-2*`, format: 'json' })).map((i) => i.index).sort();
    expect(days).toEqual([`${indices.resultsIndex}-2026.11.30`, `${indices.resultsIndex}-2026.12.01`]);
    expect(await latest(indices.latestIndex)).toEqual({ 'abuse.miner.detected': true, 'proc.count': 10, 'net.ports': 3 });

    await es.indices.refresh({ index: indices.hostsIndex });
    const hosts = await es.search<Record<string, any>>({ index: indices.hostsIndex });
    expect(hosts.hits.hits).toHaveLength(1);
    expect(hosts.hits.hits[0]!._id).toBe(host.id);
    expect(hosts.hits.hits[0]!._source).toMatchObject({
      host,
      first_seen: '2026-11-30T23:50:00.000Z',
      last_seen: '2026-12-01T00:35:00.000Z',
      runs: { abuse: { '@timestamp': '2026-12-01T00:35:00.000Z', outcome: 'ok' } },
      agent: { version: '1.0.0' },
      bundle: { version: 'v1' },
    });
  });

  it('a spool replayed after newer runs leaves gather-latest and gather-hosts at the newest state', async () => {
    const indices = names();
    const state = tempDir();
    const spoolDir = tempDir('gather-cs-spool-');
    await run(indices, state, '2026-12-01T10:00:00.000Z', { abc: { 'proc.count': 1, 'x.gone': 1 } });
    // Elasticsearch "down" for this run: its changes wait in the spool.
    const spooled = await run(
      indices,
      state,
      '2026-12-01T10:15:00.000Z',
      { abc: { 'proc.count': 2, 'x.gone': 1 } },
      { node: await deadPort(), spoolDir },
    );
    expect(spooled.totals).toMatchObject({ spooled: 2, failed: 0 }); // the change and the summary (their current-state writes travel along, uncounted)
    expect(spooled.state).toBe('committed');
    // A newer run delivered first by another path (no spool here), then the old spool is replayed.
    await run(indices, state, '2026-12-01T10:30:00.000Z', { abc: { 'proc.count': 3 } });
    const replay = createEsExporter({ node: url!, ...indices, currentState: true, spoolDir });
    expect(await replay.close()).toMatchObject({ recovered: 2, failed: 0 });
    expect(await readdir(spoolDir)).toEqual([]);
    expect(await latest(indices.latestIndex)).toEqual({ 'proc.count': 3 });
    await es.indices.refresh({ index: indices.hostsIndex });
    const hosts = await es.search<Record<string, any>>({ index: indices.hostsIndex });
    expect(hosts.hits.hits[0]!._source).toMatchObject({
      last_seen: '2026-12-01T10:30:00.000Z',
      runs: { abuse: { '@timestamp': '2026-12-01T10:30:00.000Z' } },
    });
    // The history has every change, the replayed ones included.
    expect(await changes(indices.resultsIndex)).toContain('10:15 changed:proc.count=2');
  });

  it('a spool segment dropped undelivered forces a full snapshot, which also clears what gather-latest no longer holds', async () => {
    const indices = names();
    const state = tempDir();
    const spoolDir = tempDir('gather-cs-spool-');
    await run(indices, state, '2026-12-01T12:00:00.000Z', { abc: { 'a.one': 1, 'a.two': 2 } });
    const dead = await deadPort();
    const small = { node: dead, spoolDir, spoolMaxBytes: 6000, spoolSegmentBytes: 1, maxBatchDocs: 1 };
    // Outage: a removal is spooled, then pushed out of the full spool by later documents.
    await run(indices, state, '2026-12-01T12:15:00.000Z', { abc: { 'a.one': 1 } }, small);
    const dropped = await run(
      indices,
      state,
      '2026-12-01T12:30:00.000Z',
      { abc: { 'a.one': 1, 'big.value': 'x'.repeat(700) as unknown as number } },
      small,
    );
    expect(dropped.totals.dropped).toBeGreaterThan(0);
    expect(dropped.state).toBe('invalidated');
    await rm(spoolDir, { recursive: true, force: true });

    const recovered = await run(indices, state, '2026-12-01T12:45:00.000Z', { abc: { 'a.one': 1 } });
    expect(recovered.counts).toMatchObject({ snapshot: 1, unchanged: 0 });
    expect(await latest(indices.latestIndex)).toEqual({ 'a.one': 1 });
  });
});
