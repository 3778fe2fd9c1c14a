// gather-fleet against the real Elasticsearch: documents written by the exporter as agents write them.
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { Client } from '@elastic/elasticsearch';
import type { ResultDocument, RunSummaryDocument } from '@gather/core';
import { createEsExporter } from '@gather/exporter-es';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../src/cli.js';

const url = process.env.GATHER_ES_URL;
if (!url) throw new Error('GATHER_ES_URL is not set: run through vitest (globalSetup starts Elasticsearch) or export it');
const es = new Client({ node: url, requestTimeout: 60_000 });
const base = `gather-fleet-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
const indices = {
  resultsIndex: `${base}-results`,
  errorsIndex: `${base}-errors`,
  runsIndex: `${base}-runs`,
  latestIndex: `${base}-latest`,
  hostsIndex: `${base}-hosts`,
};
const env = {
  GATHER_ES_URL: url,
  GATHER_ES_RESULTS_INDEX: indices.resultsIndex,
  GATHER_ES_ERRORS_INDEX: indices.errorsIndex,
  GATHER_ES_RUNS_INDEX: indices.runsIndex,
  GATHER_ES_LATEST_INDEX: indices.latestIndex,
  GATHER_ES_HOSTS_INDEX: indices.hostsIndex,
};
const NOW = new Date('2026-12-01T12:00:00.000Z');

async function fleet(args: string[], extraEnv: Record<string, string> = {}) {
  let stdout = '';
  let stderr = '';
  const code = await main(args, {
    stdout: (t) => (stdout += t),
    stderr: (t) => (stderr += t),
    env: { ...env, ...extraEnv },
    now: () => NOW,
  });
  return { code, stdout, stderr };
}

const hosts = {
  miner: { hostname: 'vm-miner', id: 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' },
  clean: { hostname: 'vm-clean', id: 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb' },
  gone: { hostname: 'vm-gone', id: 'cccccccccccccccccccccccccccccccc' },
};

// What the agent remembers of its host (first run), as run-once passes it in the run summary.
const firstSeen = new Map<string, string>();

async function report(
  host: { hostname: string; id: string },
  at: string,
  category: 'abuse' | 'analytics',
  values: Record<string, unknown>,
  check = 'abc',
) {
  const exporter = createEsExporter({ node: url!, ...indices, currentState: true, indexSettings: { number_of_replicas: 0 } });
  const doc = {
    '@timestamp': at,
    run_id: `${host.id}-${at}`,
    host,
    agent: { version: '1.2.0' },
    bundle: { version: '2026.11.30', sha256: 's' },
  };
  const results = Object.entries(values).map(
    ([name, value]) =>
      ({
        kind: 'result',
        ...doc,
        category,
        check,
        duration_ms: 1,
        name,
        type: typeof value === 'boolean' ? 'boolean' : typeof value === 'number' ? 'number' : 'string',
        value,
        change: 'snapshot',
      }) as ResultDocument,
  );
  await exporter.exportResults(results);
  await exporter.exportRunSummary({
    kind: 'run',
    ...doc,
    category,
    outcome: 'ok',
    checks: { run: 1, ok: 1, failed: 0, timed_out: 0 },
    results: results.length,
    errors: 0,
    export: { delivered: 0, spooled: 0, failed: 0, retried: 0, dead_lettered: 0, dropped: 0, unreadable: 0, recovered: 0 },
    spooled: 0,
    bytes_fetched: 0,
    duration_ms: 1,
    peak_rss_bytes: 1,
    ...(firstSeen.has(host.id) ? { first_seen: firstSeen.get(host.id) } : {}),
  } as RunSummaryDocument);
  if (!firstSeen.has(host.id)) firstSeen.set(host.id, at);
  expect(await exporter.close()).toMatchObject({ failed: 0 });
}

beforeAll(async () => {
  await report(hosts.miner, '2026-12-01T11:45:00.000Z', 'abuse', {
    'abuse.miner.detected': true,
    'abuse.miner.process': 'xmrig',
    'abuse.ddos.detected': false,
  });
  await report(hosts.miner, '2026-12-01T11:46:00.000Z', 'analytics', { 'containers.docker.installed': true }, 'def');
  await report(hosts.clean, '2026-12-01T11:50:00.000Z', 'abuse', { 'abuse.miner.detected': false });
  await report(
    hosts.clean,
    '2026-12-01T11:51:00.000Z',
    'analytics',
    { 'containers.docker.installed': true, 'db.postgres.installed': true },
    'def',
  );
  await report(hosts.gone, '2026-12-01T08:00:00.000Z', 'abuse', { 'abuse.miner.detected': false });
  await es.indices.refresh({ index: `${base}-*` });
});

afterAll(async () => {
  await es.indices.delete({ index: `${base}-*`, ignore_unavailable: true, allow_no_indices: true }).catch(() => undefined);
  await es.indices.deleteIndexTemplate({ name: `${base}-*` }).catch(() => undefined);
  await es.close();
});

describe('gather-fleet', () => {
  it('abused: hosts with an abuse detection now, with the evidence', async () => {
    const human = await fleet(['abused']);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/^HOST\s+HOSTNAME\s+REPORTED\s+DETECTED\s+EVIDENCE\n/);
    expect(human.stdout).toContain('vm-miner');
    expect(human.stdout).toContain('abuse.miner.detected');
    expect(human.stdout).toContain('abuse.miner.process=xmrig');
    expect(human.stdout).not.toContain('vm-clean');
    const json = JSON.parse((await fleet(['abused', '--json'])).stdout);
    expect(json).toEqual([
      expect.objectContaining({
        host: hosts.miner.id,
        hostname: 'vm-miner',
        detected: ['abuse.miner.detected'],
        since: '2026-12-01T11:45:00.000Z',
      }),
    ]);
    expect(json[0].evidence.map((e: { name: string }) => e.name)).toEqual(['abuse.ddos.detected', 'abuse.miner.process']);
  });

  it('silent --since: hosts whose last run is older than that', async () => {
    const json = JSON.parse((await fleet(['silent', '--since', '2h', '--json'])).stdout);
    expect(json.map((h: { hostname: string }) => h.hostname)).toEqual(['vm-gone']);
    const human = await fleet(['silent', '--since', '5h']);
    expect(human).toMatchObject({ code: 0, stdout: 'No host silent for 5h.\n' });
    expect((await fleet(['silent', '--since', 'soon'])).code).toBe(2);
    expect((await fleet(['silent'])).stderr).toMatch(/silent needs --since <duration>[\s\S]*gather-fleet --help/);
  });

  it('host: the current state of one host by id or hostname, grouped by check', async () => {
    const byName = await fleet(['host', 'vm-clean']);
    expect(byName.code).toBe(0);
    expect(byName.stdout).toContain(`host.id     ${hosts.clean.id}`);
    expect(byName.stdout).toMatch(/abuse\/abc\n\s+NAME\s+VALUE\s+SINCE\n\s+abuse\.miner\.detected\s+false/);
    expect(byName.stdout).toMatch(/analytics\/def\n[\s\S]*db\.postgres\.installed\s+true/);
    const byId = JSON.parse((await fleet(['host', hosts.clean.id, '--json'])).stdout);
    expect(byId.host).toMatchObject({
      id: hosts.clean.id,
      hostname: 'vm-clean',
      first_seen: '2026-12-01T11:50:00.000Z',
      last_seen: '2026-12-01T11:51:00.000Z',
      outcome: 'ok',
    });
    expect(Object.keys(byId.checks)).toEqual(['abuse/abc', 'analytics/def']);
    const missing = await fleet(['host', 'vm-nowhere']);
    expect(missing.code).toBe(5);
    expect(missing.stderr).toContain('No host "vm-nowhere"');
  });

  it('summary: hosts per outcome, agent and bundle version; top analytics results', async () => {
    const json = JSON.parse((await fleet(['summary', '--json'])).stdout);
    expect(json).toEqual({
      hosts: 3,
      outcome: { ok: 3 },
      agent: { '1.2.0': 3 },
      bundle: { '2026.11.30': 3 },
      analytics: { 'containers.docker.installed': 2, 'db.postgres.installed': 1 },
    });
    const human = (await fleet(['summary'])).stdout;
    expect(human).toMatch(/^3 hosts\n/);
    expect(human).toMatch(/containers\.docker\.installed\s+2/);
  });

  it('prune: deletes exactly the daily indices older than --keep-days (--dry-run only lists them)', async () => {
    const days = ['2026.11.20', '2026.11.24', '2026.11.25', '2026.12.01'];
    for (const day of days) {
      for (const kind of [indices.resultsIndex, indices.runsIndex])
        await es.indices.create({ index: `${kind}-${day}` }).catch(() => undefined);
    }
    const expected = [
      `${indices.resultsIndex}-2026.11.20`,
      `${indices.resultsIndex}-2026.11.24`,
      `${indices.runsIndex}-2026.11.20`,
      `${indices.runsIndex}-2026.11.24`,
    ];
    const dry = JSON.parse((await fleet(['prune', '--keep-days', '7', '--dry-run', '--json'])).stdout);
    expect(dry).toEqual({ dry_run: true, keep_days: 7, indices: expected });
    expect((await es.cat.indices({ index: `${base}-*-2026.11.*`, format: 'json' })).length).toBe(6);

    const real = await fleet(['prune', '--keep-days', '7']);
    expect(real.code).toBe(0);
    expect(real.stdout).toMatch(/^Deleted 4 daily indices:\nINDEX\n/);
    const left = (await es.cat.indices({ index: `${base}-*-2*`, format: 'json' })).map((i) => i.index).sort();
    expect(left).toEqual([
      `${indices.resultsIndex}-2026.11.25`,
      `${indices.resultsIndex}-2026.12.01`,
      `${indices.runsIndex}-2026.11.25`,
      `${indices.runsIndex}-2026.12.01`,
    ]);
    expect((await fleet(['prune', '--keep-days', '0'])).code).toBe(2);
  });

  it('setup installs the templates; clear errors and exit codes when Elasticsearch is unreachable or the indices are missing', async () => {
    const other = `${base}-setup`;
    const setupEnv = {
      GATHER_ES_RESULTS_INDEX: `${other}-results`,
      GATHER_ES_ERRORS_INDEX: `${other}-errors`,
      GATHER_ES_RUNS_INDEX: `${other}-runs`,
      GATHER_ES_LATEST_INDEX: `${other}-latest`,
      GATHER_ES_HOSTS_INDEX: `${other}-hosts`,
    };
    const setup = await fleet(['setup'], setupEnv);
    expect(setup.code).toBe(0);
    const templates = await es.indices.getIndexTemplate({ name: `${other}-*` });
    expect(templates.index_templates.map((t) => t.name).sort()).toEqual(
      ['errors', 'hosts', 'latest', 'results', 'runs'].map((k) => `${other}-${k}-gather`),
    );

    const missing = await fleet(['abused'], setupEnv);
    expect(missing.code).toBe(4);
    expect(missing.stderr).toMatch(/Index .*-latest does not exist .* Run "gather-fleet setup"/);

    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    await new Promise((resolve) => server.close(resolve));
    const down = await fleet(['summary'], { GATHER_ES_URL: `http://127.0.0.1:${port}` });
    expect(down.code).toBe(3);
    expect(down.stderr).toMatch(/Cannot reach Elasticsearch at 127\.0\.0\.1:\d+ .* Check --es-url/);
    expect((await fleet(['frobnicate'])).code).toBe(2);
  });
});
