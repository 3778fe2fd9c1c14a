// Exit codes and run summaries tell the truth, against the real Elasticsearch: a document that did not reach
// its index (refused and dead-lettered, unreadable in a damaged spool) is counted in the run summary, logged,
// and makes `gather-agent run` exit 6; what a refused index made the exporter spool is counted as spooled.
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Client } from '@elastic/elasticsearch';
import { afterAll, describe, expect, it } from 'vitest';
import { dailyIndex } from '@gather/exporter-es';
import { agent, cleanEnv, makeBundleFile, ndjson, tempDir } from './_helpers.js';

const esUrl = process.env.GATHER_ES_URL;
if (!esUrl)
  throw new Error('GATHER_ES_URL is not set: run through the vitest "integration" project (tools/vitest-services.ts), or export it.');
const es = new Client({ node: esUrl, requestTimeout: 60_000 });
const created: string[] = [];
const templates: string[] = [];

afterAll(async () => {
  for (const name of templates) await es.indices.deleteIndexTemplate({ name }).catch(() => undefined);
  for (const index of created) {
    // The exporter writes daily indices <index>-YYYY.MM.DD (gather-latest and gather-hosts keep their name).
    await es.indices.delete({ index: [index, `${index}-2*`], ignore_unavailable: true, allow_no_indices: true }).catch(() => undefined);
    await es.indices.deleteIndexTemplate({ name: `${index}-gather` }).catch(() => undefined);
  }
  await es.close();
});

function names() {
  const id = `${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
  const indices = {
    results: `p9e-exit-results-${id}`,
    errors: `p9e-exit-errors-${id}`,
    runs: `p9e-exit-runs-${id}`,
    latest: `p9e-exit-latest-${id}`,
    hosts: `p9e-exit-hosts-${id}`,
  };
  created.push(...Object.values(indices));
  return { id, ...indices };
}

/** Today's daily index of `base` (UTC), where the documents of a run started now go. */
const today = (base: string) => dailyIndex(base, new Date().toISOString());
/** All daily indices of `base`. */
const days = (base: string) => `${base}-2*`;

const SMALL = { 'abuse/run-abc': 'output a.one number 1\noutput a.two string \'"x"\'', 'abuse/run-def': 'output b.one boolean true' };

async function runAgent(
  n: ReturnType<typeof names>,
  spoolDir = tempDir('gather-spool-'),
  extraEnv: Record<string, string> = {},
  scripts: Record<string, string> = SMALL,
) {
  const fx = await makeBundleFile(scripts);
  const result = await agent(['run', '--bundle', fx.bundlePath, '--public-key', fx.publicKeyPath, '--log-level', 'info'], {
    env: cleanEnv({
      GATHER_EXPORTER: 'elasticsearch',
      GATHER_ES_URL: esUrl!,
      GATHER_ES_RESULTS_INDEX: n.results,
      GATHER_ES_ERRORS_INDEX: n.errors,
      GATHER_ES_RUNS_INDEX: n.runs,
      GATHER_ES_LATEST_INDEX: n.latest,
      GATHER_ES_HOSTS_INDEX: n.hosts,
      GATHER_SPOOL_DIR: spoolDir,
      ...extraEnv,
    }),
  });
  const logs = ndjson(
    result.stderr
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .join('\n'),
  );
  const completed = logs.find((line) => /^run (completed|failed)/.test(String(line.msg)));
  return { ...result, logs, completed, spoolDir };
}

/** The run summaries in the daily indices of `base`. */
async function runSummaries(base: string): Promise<Array<Record<string, unknown>>> {
  const index = days(base);
  await es.indices.refresh({ index, allow_no_indices: true });
  return (await es.search<Record<string, unknown>>({ index, allow_no_indices: true, query: { match_all: {} } })).hits.hits.map(
    (hit) => hit._source!,
  );
}

function spooledRecords(dir: string): Array<{ index: string; doc: Record<string, unknown> }> {
  return readdirSync(dir)
    .filter((name) => name.endsWith('.ndjson'))
    .flatMap((name) => ndjson(readFileSync(join(dir, name), 'utf8')) as Array<{ index: string; doc: Record<string, unknown> }>);
}

describe('exit codes and summaries tell the truth', () => {
  it('documents Elasticsearch refuses (dead-lettered) are counted, logged, and the run exits 6', async () => {
    const n = names();
    // Every result is refused by today's daily index: it requires a routing key, which gather documents do not have.
    await es.indices.create({ index: today(n.results), settings: { number_of_replicas: 0 }, mappings: { _routing: { required: true } } });

    const run = await runAgent(n);
    expect(run.code, run.stderr).toBe(6);
    // The log line has the final totals. The run summary document has those at the time it was written: on a
    // loaded cluster a bulk request may time out first, its documents spooled, then refused at the final flush.
    expect(run.completed).toMatchObject({
      level: 'error',
      outcome: 'export_incomplete',
      export: { dead_lettered: 3, dropped: 0, unreadable: 0, spooled: 0 },
    });
    const [summary] = await runSummaries(n.runs);
    expect(summary).toMatchObject({ results: 3, export: { dropped: 0, unreadable: 0 } });
    const counted = summary!.export as { dead_lettered: number; spooled: number };
    expect(counted.dead_lettered + counted.spooled).toBe(3);
    expect(run.logs.some((line) => /Elasticsearch rejected 3 documents/.test(String(line.msg)))).toBe(true);
  });

  it('indices refused for a mapping conflict (a template claims them): what was spooled is counted as spooled, and the run exits 6', async () => {
    const n = names();
    // The daily indices are made by Elasticsearch from gather's template on first write. Another template claims
    // them at gather's priority (200), with a field gather maps as keyword mapped as a number: Elasticsearch
    // refuses gather's template (overlapping patterns at equal priority), so no index with gather's mapping can
    // be made, and the exporter writes nothing into indices without it.
    const conflicting = `${n.results}-conflicting`;
    templates.push(conflicting);
    await es.indices.putIndexTemplate({
      name: conflicting,
      index_patterns: [days(n.results)],
      priority: 200,
      template: { settings: { number_of_replicas: 0 }, mappings: { properties: { name: { type: 'long' } } } },
    });

    const run = await runAgent(n);
    expect(run.code, run.stderr).toBe(6);
    const spooled = spooledRecords(run.spoolDir);
    // Everything (3 results, the run summary too) waits in the spool for the indices to be fixed.
    expect(spooled.filter((r) => r.index === today(n.results))).toHaveLength(3);
    expect(spooled.find((r) => r.index === today(n.runs))?.doc).toMatchObject({
      outcome: 'export_failed',
      spooled: 3,
      export: { spooled: 3 },
    });
    // The log line counts the run summary too (not the current-state writes, spooled with them).
    expect(run.completed).toMatchObject({ outcome: 'export_failed', spooled: 4, export: { spooled: 4, dead_lettered: 0, dropped: 0 } });
    expect(run.stderr).toMatch(/refused the request while installing the index templates \(.*illegal_argument_exception/);
    expect(run.stderr).toMatch(new RegExp(`${conflicting}`));
    // Nothing was written to an index without gather's mapping.
    expect((await es.cat.indices({ index: days(n.results), format: 'json' })).map((i) => i.index)).toEqual([]);
  });

  it('unreadable lines of a damaged spool segment are counted, logged, and the run exits 6', async () => {
    const n = names();
    const spoolDir = tempDir('gather-spool-');
    const at = new Date().toISOString();
    // A record as the exporter spools it: for the daily index of the document's @timestamp.
    const good = {
      index: dailyIndex(n.results, at),
      id: `p9e-spooled-${n.id}:abc:0`,
      doc: {
        kind: 'result',
        '@timestamp': at,
        run_id: `p9e-spooled-${n.id}`,
        host: { hostname: 'vm' },
        agent: { version: '0' },
        check: 'abc',
        name: 'old',
        type: 'number',
        value: 1,
      },
    };
    // A record, garbage bytes (a damaged disk block), another record's worth of garbage at the end.
    const garbage = Buffer.from(randomBytes(300).map((b) => (b === 10 ? 11 : b)));
    writeFileSync(
      join(spoolDir, 'spool-000000000001.ndjson'),
      Buffer.concat([Buffer.from(`${JSON.stringify(good)}\n`), garbage, Buffer.from('\n'), garbage]),
    );

    const run = await runAgent(n, spoolDir);
    expect(run.code, run.stderr).toBe(6);
    const [summary] = await runSummaries(n.runs);
    expect(summary).toMatchObject({ outcome: 'export_incomplete', export: { unreadable: 2, recovered: 1, dead_lettered: 0, spooled: 0 } });
    expect(run.logs.some((line) => /2 unreadable lines in the damaged spool segment/.test(String(line.msg)))).toBe(true);
    await es.indices.refresh({ index: days(n.results) });
    expect((await es.count({ index: days(n.results) })).count).toBe(4);
    expect(readdirSync(spoolDir).filter((name) => name.endsWith('.ndjson'))).toEqual([]);
  });

  it('documents dropped from a full spool are counted, logged, reported later, and the run exits 6', async () => {
    const n = names();
    const spoolDir = tempDir('gather-spool-');
    // Elasticsearch unreachable (a closed loopback port) and a spool of 8 KiB (a run spools about 5 KiB, its
    // gather-latest and gather-hosts writes included): the first run fits in the spool
    // (exit 7), the next ones push the oldest segments out.
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const { port } = closed.address() as AddressInfo;
    await new Promise((resolve) => closed.close(resolve));
    const downEnv = { GATHER_ES_URL: `http://127.0.0.1:${port}`, GATHER_SPOOL_MAX_BYTES: '8192' };
    const first = await runAgent(n, spoolDir, downEnv);
    expect(first.code, first.stderr).toBe(7);
    // The log line counts the run summary too (3 results + 1).
    expect(first.completed).toMatchObject({ outcome: 'spooled', spooled: 4, export: { spooled: 4, dropped: 0 } });
    let down = first;
    for (let i = 0; i < 4 && down.code === 7; i++) down = await runAgent(n, spoolDir, downEnv);
    expect(down.code, down.stderr).toBe(6);
    expect(down.completed).toMatchObject({ level: 'error', outcome: 'export_incomplete' });
    const dropped = (down.completed!.export as { dropped: number }).dropped;
    expect(dropped).toBeGreaterThan(0);
    // The run's own documents (3 results + its summary) are spooled or failed (dropped); the dropped current-state
    // writes (in `dropped`) count in neither.
    const totals = down.completed!.export as { spooled: number; failed: number };
    expect(totals.spooled).toBeGreaterThanOrEqual(0);
    expect(totals.spooled + totals.failed).toBe(4);
    expect(down.logs.some((line) => /Spool full \(spoolMaxBytes 8192\): dropped its oldest segment/.test(String(line.msg)))).toBe(true);

    // Elasticsearch back: the next run delivers what is left and reports the drop in the errors index.
    const back = await runAgent(n, spoolDir);
    expect(back.code, back.stderr).toBe(0);
    await es.indices.refresh({ index: days(n.errors) });
    const reports = (await es.search<Record<string, unknown>>({ index: days(n.errors), query: { term: { reason: 'spool_dropped' } } })).hits
      .hits;
    expect(reports.reduce((sum, hit) => sum + Number(hit._source!.dropped_docs), 0)).toBe(dropped);
  });

  it('exits 0 only when every document reached its index (control)', async () => {
    const n = names();
    const run = await runAgent(n);
    expect(run.code, run.stderr).toBe(0);
    const [summary] = await runSummaries(n.runs);
    expect(summary).toMatchObject({
      outcome: 'ok',
      export: { delivered: 3, dead_lettered: 0, dropped: 0, unreadable: 0, spooled: 0, failed: 0 },
    });
  });
});
