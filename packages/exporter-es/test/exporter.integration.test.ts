// The Elasticsearch exporter against the real Elasticsearch of tools/services (GATHER_ES_URL).
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from '@elastic/elasticsearch';
import type { ErrorDocument, ResultDocument, RunSummaryDocument } from '@gather/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exporterContract, sampleError, sampleResult, sampleRunSummary } from '@gather/core/testing';
import { createEsExporter, type EsExporterOptions } from '../src/index.js';
import { dailyIndex } from '../src/daily.js';
import { resultSource, templateName } from '../src/mapping.js';
import { count, dropIndices, esUrl, mappingOf, original, readAll, testClient, uniqueName } from './_es.js';

const url = esUrl();
let client: Client;
const created: string[] = [];
const tmpDirs: string[] = [];

type Indices = { resultsIndex: string; errorsIndex: string; runsIndex: string };

/** Fresh index names (dropped after the file), so every test reads only its own documents. */
function indices(): Indices {
  const base = uniqueName('gather-it');
  const names = { resultsIndex: `${base}-results`, errorsIndex: `${base}-errors`, runsIndex: `${base}-runs` };
  created.push(names.resultsIndex, names.errorsIndex, names.runsIndex);
  return names;
}

function exporterFor(names: Indices, options: Partial<EsExporterOptions> = {}) {
  return createEsExporter({ node: url, ...names, indexSettings: { number_of_replicas: 0 }, ...options });
}

function results(runId: string, check: string, n: number, value: (i: number) => unknown = (i) => i): ResultDocument[] {
  return Array.from({ length: n }, (_, i) => ({ ...sampleResult(i, value(i)), run_id: runId, check }));
}

beforeAll(() => {
  client = testClient(url);
});

afterAll(async () => {
  await dropIndices(client, created);
  for (const dir of tmpDirs) await rm(dir, { recursive: true, force: true });
  await client.close();
});

// The shared Exporter contract of @gather/core, for real: each create() gets its own indices.
let contractIndices = indices();
exporterContract('elasticsearch', {
  create() {
    contractIndices = indices();
    return exporterFor(contractIndices);
  },
  async readBack() {
    const docs = await readAll(client, contractIndices.resultsIndex, contractIndices.errorsIndex);
    return docs.map((d) => original(d.source));
  },
  async readBackRuns() {
    return (await readAll(client, contractIndices.runsIndex)).map((d) => d.source as unknown as RunSummaryDocument);
  },
});

describe('index templates', () => {
  it('are installed on first use with explicit mappings, idempotently, and shape the indices', async () => {
    const names = indices();
    for (let i = 0; i < 2; i++) {
      const exporter = exporterFor(names, { templatePriority: 321 });
      await exporter.exportResults([{ ...sampleResult(i), run_id: `templates-${i}` }]);
      expect(await exporter.close()).toMatchObject({ delivered: 1, failed: 0 });
    }
    const { index_templates: templates } = await client.indices.getIndexTemplate({ name: templateName(names.resultsIndex) });
    expect(templates).toHaveLength(1);
    expect(templates[0]!.index_template).toMatchObject({ index_patterns: [`${names.resultsIndex}-2*`], priority: 321 });
    const mapping = await mappingOf(client, names.resultsIndex);
    expect(mapping.dynamic).toBe('false');
    expect(mapping.properties).toMatchObject({
      '@timestamp': { type: 'date' },
      name: { type: 'keyword' },
      category: { type: 'keyword' },
      check: { type: 'keyword' },
      host: { properties: { hostname: { type: 'keyword' } } },
      bundle: { properties: { version: { type: 'keyword' }, sha256: { type: 'keyword' } } },
      agent: { properties: { version: { type: 'keyword' } } },
      value: { type: 'object', enabled: false },
      value_number: { type: 'double' },
      value_object: { type: 'flattened' },
    });
    // No error yet, so no errors index of today: its template holds the mappings it will get.
    const errors = (await client.indices.getIndexTemplate({ name: templateName(names.errorsIndex) })).index_templates[0]!.index_template
      .template!.mappings!;
    expect(errors.properties).toMatchObject({ reason: { type: 'keyword' }, original: { type: 'object', enabled: false } });
    const { index_templates: runTemplates } = await client.indices.getIndexTemplate({ name: templateName(names.runsIndex) });
    expect(runTemplates[0]!.index_template).toMatchObject({ index_patterns: [`${names.runsIndex}-2*`], priority: 321 });
    const runs = runTemplates[0]!.index_template.template!.mappings!;
    expect(String(runs.dynamic)).toBe('false');
    expect(runs.properties).toMatchObject({
      '@timestamp': { type: 'date' },
      run_id: { type: 'keyword' },
      outcome: { type: 'keyword' },
      trigger: { type: 'keyword' },
      checks: { properties: { run: { type: 'long' }, timed_out: { type: 'long' } } },
      export: {
        properties: {
          delivered: { type: 'long' },
          dead_lettered: { type: 'long' },
          dropped: { type: 'long' },
          unreadable: { type: 'long' },
        },
      },
      duration_ms: { type: 'double' },
      peak_rss_bytes: { type: 'long' },
      overrun: { type: 'boolean' },
      message: { type: 'text' },
    });
  });

  it('are only read, not written again, by the next exporters while unchanged (no cluster state update per run)', async () => {
    const names = indices();
    const first = exporterFor(names);
    await first.exportResults([{ ...sampleResult(1), run_id: 'marker' }]);
    await first.close();
    const name = templateName(names.resultsIndex);
    // Mark the installed templates: a PUT by the next exporter would remove the marker.
    for (const marked of [name, templateName(names.runsIndex)]) {
      const installed = (await client.indices.getIndexTemplate({ name: marked })).index_templates[0]!.index_template;
      // Elasticsearch 9 also returns created_date_millis/modified_date_millis, which a PUT refuses
      // ("unrecognized parameters"): leave them out of the round trip.
      const writable = Object.fromEntries(
        Object.entries(installed).filter(([key]) => !/^(created|modified)_date/.test(key)),
      ) as typeof installed;
      await client.indices.putIndexTemplate({ name: marked, ...writable, _meta: { ...writable._meta, marker: 'kept' } } as never);
    }
    const next = exporterFor(names);
    await next.exportResults([{ ...sampleResult(2), run_id: 'marker' }]);
    await next.exportRunSummary({ ...sampleRunSummary(), run_id: 'marker' });
    await next.close();
    for (const marked of [name, templateName(names.runsIndex)]) {
      expect((await client.indices.getIndexTemplate({ name: marked })).index_templates[0]!.index_template._meta).toMatchObject({
        marker: 'kept',
      });
    }
    // A different template (here: priority) is installed over it.
    const changed = exporterFor(names, { templatePriority: 777 });
    await changed.exportResults([{ ...sampleResult(3), run_id: 'marker' }]);
    await changed.close();
    const after = (await client.indices.getIndexTemplate({ name })).index_templates[0]!.index_template;
    expect(after.priority).toBe(777);
    expect(after._meta).not.toHaveProperty('marker');
  });
});

describe('replicas by default', () => {
  it('are none on a single node, so its indices are green (not waiting for a replica that cannot be placed)', async () => {
    const names = indices();
    const exporter = createEsExporter({ node: url, ...names });
    await exporter.exportResults(results('replicas', 'rep', 1));
    expect(await exporter.close()).toMatchObject({ delivered: 1, failed: 0 });
    const state = await client.cluster.health({ index: names.resultsIndex, wait_for_status: 'green', timeout: '10s' });
    expect(state.status).toBe('green');
    const settings = await client.indices.getSettings({ index: names.resultsIndex });
    expect(Object.values(settings)[0]?.settings?.index?.number_of_replicas).toBe('0');
  });
});

describe('values of every type under one name', () => {
  it('are all accepted (no rejection) and searchable and aggregatable by type', async () => {
    const names = indices();
    const exporter = exporterFor(names);
    // The same result name across checks and bundle versions, with values of all five types.
    const values: unknown[] = [
      true,
      false,
      10,
      32.5,
      'up',
      'down',
      ['a', 1, { deep: [true] }],
      [],
      { disk: { used: 70 } },
      { disk: 'n/a' },
      null,
    ];
    await exporter.exportResults(
      values.map((value, i) => ({ ...sampleResult(i, value), name: 'disk.usage', check: `c${i % 3}`, run_id: 'mixed' })),
    );
    const summary = await exporter.close();
    expect(summary).toMatchObject({ delivered: values.length, failed: 0, deadLettered: 0, spooled: 0 });
    expect(await count(client, names.errorsIndex)).toBe(0);
    expect(await count(client, names.resultsIndex)).toBe(values.length);

    const search = await client.search({
      index: names.resultsIndex,
      size: 0,
      query: { term: { name: 'disk.usage' } },
      aggs: {
        numbers: { stats: { field: 'value_number' } },
        strings: { terms: { field: 'value_string', order: { _key: 'asc' } } },
        booleans: { terms: { field: 'value_boolean' } },
        objectKeys: { terms: { field: 'value_object.disk.used' } },
      },
    });
    const aggs = search.aggregations as Record<
      string,
      { count?: number; sum?: number; avg?: number; buckets?: Array<{ key: unknown; doc_count: number }> }
    >;
    expect(aggs.numbers).toMatchObject({ count: 2, sum: 42.5, avg: 21.25 });
    expect(aggs.strings!.buckets!.map((b) => b.key)).toEqual(['down', 'up']);
    expect(aggs.booleans!.buckets!.map((b) => b.doc_count)).toEqual([1, 1]);
    expect(aggs.objectKeys!.buckets).toEqual([{ key: '70', doc_count: 1 }]);

    const hits = async (query: object) => (await client.count({ index: names.resultsIndex, query })).count;
    expect(await hits({ term: { value_array: 'a' } })).toBe(1);
    expect(await hits({ term: { 'value_array.items.deep': 'true' } })).toBe(1);
    expect(await hits({ term: { 'value_object.disk': 'n/a' } })).toBe(1);
    expect(await hits({ term: { value_json: 'null' } })).toBe(1);
    expect(await hits({ match: { 'value_string.text': 'down' } })).toBe(1);
    expect(await hits({ range: { value_number: { gt: 20 } } })).toBe(1);
  });
});

describe('volume', () => {
  it('delivers 10k results exactly once, and a re-export of the same run (same ids) duplicates nothing', async () => {
    const names = indices();
    const docs = [...results('volume', 'abc', 5000), ...results('volume', 'xyz', 5000, (i) => `s${i}`)];
    const first = exporterFor(names, { maxBatchDocs: 700 });
    await first.exportResults(docs.slice(0, 5000));
    await first.exportResults(docs.slice(5000));
    expect(await first.close()).toMatchObject({ delivered: 10_000, failed: 0, spooled: 0, deadLettered: 0 });
    expect(await count(client, names.resultsIndex)).toBe(10_000);
    const byId = await client.get<ResultDocument>({ index: names.resultsIndex, id: 'volume:xyz:4999' });
    expect(byId._source).toMatchObject({ name: 'n.4999', value: 's4999' });

    const again = exporterFor(names);
    await again.exportResults(docs.slice(0, 5000));
    await again.exportResults(docs.slice(5000));
    expect(await again.close()).toMatchObject({ delivered: 10_000, failed: 0 });
    expect(await count(client, names.resultsIndex)).toBe(10_000);
  });
});

describe('errors index', () => {
  it('receives check errors and run errors with deterministic ids', async () => {
    const names = indices();
    const exporter = exporterFor(names);
    const { check: _check, category: _category, ...checkless } = sampleError(0);
    const runError: ErrorDocument = { ...checkless, run_id: 'errs', reason: 'bundle_refused', message: 'bad signature' };
    await exporter.exportErrors([
      { ...sampleError(1), run_id: 'errs', reason: 'timeout', message: 'timed out after 60 s', stdout: 'partial' },
    ]);
    await exporter.exportErrors([runError]);
    expect(await exporter.close()).toMatchObject({ delivered: 2, failed: 0 });
    const docs = await readAll(client, names.errorsIndex);
    expect(Object.fromEntries(docs.map((d) => [d.id, d.source.reason]))).toEqual({
      'errs:xyz:error:0': 'timeout',
      'errs:run:error:0': 'bundle_refused',
    });
  });

  it('receives documents Elasticsearch rejects for good, with the original and the reason (dead letters)', async () => {
    const names = indices();
    const exporter = exporterFor(names);
    const good = sampleResult(1);
    const badDate = { ...sampleResult(2), '@timestamp': 'yesterday' };
    const badHost = { ...sampleResult(3), host: 'vm-3' } as unknown as ResultDocument;
    await exporter.exportResults([good, badDate, badHost].map((d) => ({ ...d, run_id: 'dead' })));
    expect(await exporter.close()).toMatchObject({ delivered: 1, deadLettered: 2, failed: 0, spooled: 0 });
    expect(await count(client, names.resultsIndex)).toBe(1);
    const letters = await readAll(client, names.errorsIndex);
    expect(letters.map((l) => l.id).sort()).toEqual(['dead:abc:1:rejected', 'dead:abc:2:rejected']);
    const date = letters.find((l) => l.id === 'dead:abc:1:rejected')!.source;
    expect(date).toMatchObject({
      kind: 'error',
      reason: 'export_rejected',
      run_id: 'dead',
      check: 'abc',
      original_id: 'dead:abc:1',
      original_index: expect.stringMatching(new RegExp(`^${names.resultsIndex}-\\d{4}\\.\\d{2}\\.\\d{2}$`)),
      original: { name: 'n.2', '@timestamp': 'yesterday', value: 2 },
      rejection: { status: 400 },
    });
    expect(String(date.message)).toMatch(/failed to parse field \[@timestamp\]/);
    const host = letters.find((l) => l.id === 'dead:abc:2:rejected')!.source;
    expect(host).toMatchObject({ host: { hostname: 'unknown' }, original: { host: 'vm-3' } });
  });
});

describe('run summaries', () => {
  const summary = (runId: string, durationMs: number, extra: Partial<RunSummaryDocument> = {}): RunSummaryDocument => ({
    ...sampleRunSummary(),
    run_id: runId,
    duration_ms: durationMs,
    trigger: 'schedule',
    overrun: false,
    bundle_unchanged: true,
    ...extra,
  });

  it('go to the runs index with id <run_id>:run, numbers aggregatable, and a re-export duplicates nothing', async () => {
    const names = indices();
    const exporter = exporterFor(names);
    await exporter.exportResults(results('run-a', 'abc', 3));
    await exporter.exportRunSummary(
      summary('run-a', 1500.5, { outcome: 'checks_failed', checks: { run: 4, ok: 3, failed: 1, timed_out: 0 } }),
    );
    expect(await exporter.flush()).toMatchObject({ delivered: 4, failed: 0, spooled: 0, deadLettered: 0 });
    await exporter.exportRunSummary(summary('run-b', 500));
    expect(await exporter.close()).toMatchObject({ delivered: 5, failed: 0 });

    const docs = await readAll(client, names.runsIndex);
    expect(docs.map((d) => d.id).sort()).toEqual(['run-a:run', 'run-b:run']);
    expect(docs.find((d) => d.id === 'run-a:run')!.source).toEqual(
      summary('run-a', 1500.5, { outcome: 'checks_failed', checks: { run: 4, ok: 3, failed: 1, timed_out: 0 } }),
    );
    expect(await count(client, names.resultsIndex)).toBe(3);
    expect(await count(client, names.errorsIndex)).toBe(0);

    const search = await client.search({
      index: names.runsIndex,
      size: 0,
      query: { term: { run_id: 'run-a' } },
      aggs: {
        duration: { sum: { field: 'duration_ms' } },
        checks: { sum: { field: 'checks.run' } },
        rss: { max: { field: 'peak_rss_bytes' } },
        delivered: { sum: { field: 'export.delivered' } },
        outcomes: { terms: { field: 'outcome' } },
        unchanged: { terms: { field: 'bundle_unchanged' } },
      },
    });
    const aggs = search.aggregations as Record<
      string,
      { value?: number; buckets?: Array<{ key: unknown; key_as_string?: string; doc_count: number }> }
    >;
    expect(aggs.duration!.value).toBe(1500.5);
    expect(aggs.checks!.value).toBe(4);
    expect(aggs.rss!.value).toBe(50_000_000);
    expect(aggs.delivered!.value).toBe(1);
    expect(aggs.outcomes!.buckets).toEqual([{ key: 'checks_failed', doc_count: 1 }]);
    expect(aggs.unchanged!.buckets!.map((b) => b.key_as_string)).toEqual(['true']);
    const total = await client.search({ index: names.runsIndex, size: 0, aggs: { duration: { sum: { field: 'duration_ms' } } } });
    expect((total.aggregations!.duration as { value: number }).value).toBe(2000.5);

    // The same run exported again (a retried run, a resend after a timeout): 409, counted delivered, not indexed twice.
    const again = exporterFor(names);
    await again.exportRunSummary(summary('run-a', 1500.5));
    expect(await again.close()).toMatchObject({ delivered: 1, failed: 0, deadLettered: 0 });
    expect(await count(client, names.runsIndex)).toBe(2);
  });

  it('written while Elasticsearch is down are spooled after the results and delivered later, once, in order', async () => {
    const names = indices();
    const spoolDir = await mkdtemp(join(tmpdir(), 'gather-es-spool-'));
    tmpDirs.push(spoolDir);
    const down = createEsExporter({ node: await unreachableNode(), ...names, spoolDir, maxRetries: 0, maxBatchDocs: 4 });
    await down.exportResults(results('offline', 'abc', 10));
    expect(await down.flush()).toMatchObject({ delivered: 0, spooled: 10, failed: 0 });
    await down.exportRunSummary(summary('offline', 42, { outcome: 'spooled', spooled: 10 }));
    expect(await down.close()).toMatchObject({ delivered: 0, spooled: 11, failed: 0 });
    const spooled = (
      await Promise.all(
        (
          await readdir(spoolDir)
        )
          .filter((f) => f.endsWith('.ndjson'))
          .sort()
          .map((f) => readFile(join(spoolDir, f), 'utf8')),
      )
    )
      .join('')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { index: string; id: string });
    expect(spooled.map((r) => r.id)).toEqual([...Array.from({ length: 10 }, (_, i) => `offline:abc:${i}`), 'offline:run']);
    expect(spooled.at(-1)!.index).toMatch(new RegExp(`^${names.runsIndex}-\\d{4}\\.\\d{2}\\.\\d{2}$`));

    // The next run delivers the spool first, then its own summary; the summary of the earlier run once.
    const next = exporterFor(names, { spoolDir });
    await next.exportRunSummary(summary('online', 7));
    expect(await next.close()).toMatchObject({ delivered: 1, recovered: 11, spooled: 0, failed: 0 });
    expect(await readdir(spoolDir)).toEqual([]);
    expect(await count(client, names.resultsIndex)).toBe(10);
    const runs = await readAll(client, names.runsIndex);
    expect(runs.map((d) => d.id).sort()).toEqual(['offline:run', 'online:run']);
    expect(runs.find((d) => d.id === 'offline:run')!.source).toMatchObject({ outcome: 'spooled', spooled: 10, duration_ms: 42 });
  });
});

describe('transient item failures (HTTP 429)', () => {
  it('are retried with backoff until Elasticsearch takes them', async () => {
    const names = indices();
    const warmup = exporterFor(names);
    await warmup.exportResults([{ ...sampleResult(0), run_id: 'warm' }]);
    await warmup.close();
    // A real 429 per item: the flood-stage block Elasticsearch sets when its disk is full.
    await client.indices.putSettings({ index: names.resultsIndex, settings: { 'index.blocks.read_only_allow_delete': true } });
    const exporter = exporterFor(names, { retryBaseDelayMs: 200, maxRetries: 6 });
    const lift = new Promise((resolve) => setTimeout(resolve, 1200)).then(() =>
      client.indices.putSettings({ index: names.resultsIndex, settings: { 'index.blocks.read_only_allow_delete': null } }),
    );
    await exporter.exportResults(results('blocked', 'abc', 50));
    const summary = await exporter.close();
    await lift;
    expect(summary).toMatchObject({ delivered: 50, failed: 0, spooled: 0 });
    expect(summary.retried).toBeGreaterThanOrEqual(50);
    expect(await count(client, names.resultsIndex)).toBe(51);
  });
});

describe('credentials', () => {
  it('are redacted from the error documents and dead letters written to Elasticsearch', async () => {
    const secret = 'pw-Elastic-Secret-123';
    const names = indices();
    // This Elasticsearch has no security: it ignores the credentials, which are still sent and must never leak.
    const exporter = exporterFor(names, { auth: { username: 'gather', password: secret } });
    await exporter.exportErrors([
      { ...sampleError(1), run_id: 'redact', message: `login with ${secret} failed`, stderr: `curl -u gather:${secret}` },
    ]);
    await exporter.exportResults([{ ...sampleResult(1, `leaked ${secret}`), run_id: 'redact', '@timestamp': `not a date ${secret}` }]);
    await exporter.exportRunSummary({
      ...sampleRunSummary(),
      run_id: 'redact',
      outcome: 'fetch_failed',
      message: `GET https://gather:${secret}@bundles.example/b.tar: 500 (${secret})`,
    });
    expect(await exporter.close()).toMatchObject({ delivered: 2, deadLettered: 1 });
    const stored = JSON.stringify(await readAll(client, names.errorsIndex, names.runsIndex));
    expect(stored).toContain('login with [redacted] failed');
    expect(stored).toContain('leaked [redacted]');
    expect(stored).toContain('GET https://gather:[redacted]@bundles.example/b.tar: 500 ([redacted])');
    expect(stored).not.toContain(secret);
  });
});

async function unreachableNode(): Promise<string> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const port = (probe.address() as AddressInfo).port;
  await new Promise((resolve) => probe.close(resolve));
  return `http://127.0.0.1:${port}`;
}

describe('spool written by an earlier run', () => {
  it('is delivered first by the next exporter, and documents already delivered before a crash are not duplicated', async () => {
    const names = indices();
    const spoolDir = await mkdtemp(join(tmpdir(), 'gather-es-spool-'));
    tmpDirs.push(spoolDir);
    const docs = results('crash', 'abc', 300);

    // Run 1: Elasticsearch unreachable (nothing listens on the port) -> everything spooled.
    const down = createEsExporter({ node: await unreachableNode(), ...names, spoolDir, maxRetries: 0, maxBatchDocs: 100 });
    await down.exportResults(docs);
    expect(await down.close()).toMatchObject({ delivered: 0, spooled: 300, failed: 0 });

    // Acknowledged by Elasticsearch but not yet removed from the spool (a crash between ack and delete).
    const partial = exporterFor(names);
    await partial.exportResults(docs.slice(0, 120));
    expect(await partial.close()).toMatchObject({ delivered: 120 });

    // Run 2: delivers the spool first (the 120 answer 409: already there), then its own results.
    const next = exporterFor(names, { spoolDir });
    await next.exportResults(results('crash-2', 'abc', 5));
    expect(await next.close()).toMatchObject({ delivered: 5, recovered: 300, spooled: 0, failed: 0 });
    expect(await count(client, names.resultsIndex)).toBe(305);
    expect(await readdir(spoolDir)).toEqual([]);
  });

  it('of a gather before daily indices (records for the plain index) goes to the daily indices, and the alias stays', async () => {
    const names = indices();
    const spoolDir = await mkdtemp(join(tmpdir(), 'gather-es-spool-'));
    tmpDirs.push(spoolDir);
    const old = results('before-daily', 'abc', 3);
    const lines = old.map((d, i) => `{"index":"${names.resultsIndex}","id":"before-daily:abc:${i}","doc":${resultSource(d)}}\n`);
    await writeFile(join(spoolDir, 'spool-000000000001.ndjson'), lines.join(''));

    const next = exporterFor(names, { spoolDir });
    await next.exportResults(results('after-daily', 'abc', 2));
    expect(await next.close()).toMatchObject({ recovered: 3, delivered: 2, deadLettered: 0, spooled: 0, failed: 0 });
    expect(await count(client, names.resultsIndex)).toBe(5);
    // No concrete index of the plain name was made: it is the alias of the daily indices, and reads them all.
    expect(
      Object.keys(await client.indices.getAlias({ name: names.resultsIndex })).every((index) =>
        index.startsWith(`${names.resultsIndex}-2`),
      ),
    ).toBe(true);
    expect((await client.count({ index: names.resultsIndex })).count).toBe(5);
    expect(await readdir(spoolDir)).toEqual([]);
  });

  it('when it was full, reports the dropped documents as an error document once Elasticsearch is back', async () => {
    const names = indices();
    const spoolDir = await mkdtemp(join(tmpdir(), 'gather-es-spool-'));
    tmpDirs.push(spoolDir);
    // Room for two batches of 20 results (spool lines as the exporter writes them): the third drops the oldest.
    const docs = results('full', 'abc', 60);
    const line = (d: ResultDocument, i: number) =>
      `{"index":"${dailyIndex(names.resultsIndex, d['@timestamp'])}","id":"full:abc:${i}","doc":${resultSource(d)}}\n`;
    const twoBatches = docs.slice(0, 40).reduce((sum, d, i) => sum + Buffer.byteLength(line(d, i)), 0);
    const down = createEsExporter({
      node: await unreachableNode(),
      ...names,
      spoolDir,
      maxRetries: 0,
      maxBatchDocs: 20,
      spoolMaxBytes: twoBatches + 100,
      spoolSegmentBytes: 1,
    });
    await down.exportResults(docs);
    const spooled = await down.close();
    expect(spooled).toMatchObject({ delivered: 0, dropped: 20, failed: 20, spooled: 40 });

    const next = exporterFor(names, { spoolDir });
    expect(await next.close()).toMatchObject({ recovered: 40, spooled: 0, failed: 0 });
    expect(await count(client, names.resultsIndex)).toBe(40);
    const [report, ...more] = await readAll(client, names.errorsIndex);
    expect(more).toEqual([]);
    expect(report!.source).toMatchObject({
      kind: 'error',
      reason: 'spool_dropped',
      run_id: 'full',
      dropped_docs: 20,
      host: { hostname: 'vm-1' },
    });
    expect(String(report!.source.message)).toMatch(/ids full:abc:0 \.\. full:abc:19\) was dropped undelivered\. Raise spoolMaxBytes/);
    expect(await readdir(spoolDir)).toEqual([]);
  });
});
