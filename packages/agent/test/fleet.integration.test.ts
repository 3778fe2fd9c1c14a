// Shortened fleet faults (the full-size runs are tools/bench/fleet): hundreds of simulated agents on the
// daemon's schedule with the real exporter and spool (tools/bench/fleet/simulate.mjs), against a real
// 3-node Elasticsearch cluster of their own (tools/services, GATHER_ES_NODES=3, a private state dir deleted
// afterwards), through the measuring proxy. After each fault, every document the agents produced is in
// Elasticsearch exactly once (deterministic ids: the count rules out duplicates).
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// @ts-expect-error: a JavaScript module of tools/ (no types)
import * as fleet from '../../../tools/bench/fleet/simulate.mjs';

interface Proxy {
  url: string;
  stats(): Promise<{ bulk: number; maxInFlight: number; statuses: Record<string, number>; injected429: number; refused?: number }>;
  configure(config: { bulkDelayMs?: number; reject429?: number; down?: boolean }): Promise<unknown>;
  reset(): Promise<unknown>;
  stop(): Promise<void>;
}
interface Sample {
  simSec: number;
  spoolBytes: number;
}

const SERVICES = join(dirname(fileURLToPath(import.meta.url)), '../../../tools/services');
let work: string;
let env: NodeJS.ProcessEnv;
let urls: string[];
let proxy: Proxy;

function services(...args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('bash', [SERVICES, ...args], { env, timeout: 300_000 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`tools/services ${args.join(' ')} failed: ${error.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

async function es<T>(path: string, init?: RequestInit): Promise<T> {
  const response = await fetch(`${urls[0]}${path}`, { ...init, headers: { 'content-type': 'application/json' } });
  return (await response.json()) as T;
}

/** A fleet run with its own indices and dirs; drains what the spools still hold, then counts. */
async function fleetRun(name: string, options: Record<string, unknown>) {
  const workDir = await mkdtemp(join(work, `${name}-`));
  const indexPrefix = `gather-fleet-it-${name}-${Date.now().toString(36)}`;
  const samples: Sample[] = [];
  const result = await fleet.simulateFleet({
    esUrl: proxy.url,
    workDir,
    indexPrefix,
    onSample: (s: Sample) => samples.push(s),
    ...options,
  });
  const drained = await fleet.drainSpools({ esUrl: proxy.url, workDir, indexPrefix });
  const stored = await fleet.countStored(urls[0], indexPrefix);
  return { result, drained, stored, samples, indexPrefix };
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'gather-fleet-it-'));
  env = { ...process.env, GATHER_SERVICES_DIR: join(work, 'services'), GATHER_ES_NODES: '3' };
  const printed = await services('start', 'elasticsearch');
  const match = /^GATHER_ES_URLS=(.+)$/m.exec(printed);
  if (!match) throw new Error(`tools/services start elasticsearch printed no GATHER_ES_URLS:\n${printed}`);
  urls = match[1]!.trim().split(',');
  proxy = (await fleet.startProxy(urls)) as Proxy;
}, 300_000);

afterAll(async () => {
  await proxy?.stop();
  if (env) await services('clean', 'elasticsearch').catch(() => undefined);
  if (work) await rm(work, { recursive: true, force: true });
}, 180_000);

describe('a real 3-node cluster (tools/services GATHER_ES_NODES=3)', () => {
  it('forms one cluster; `status` shows health and nodes; the default templates give green indices with one replica', async () => {
    const status = await services('status', 'elasticsearch');
    expect(status).toMatch(/^cluster: health=(green|yellow) nodes=3 /m);
    for (let k = 1; k <= 3; k++) expect(status).toContain(`gather-es-${k}`);
    const run = await fleetRun('replicas', { agents: 5, realIntervalSec: 2, cycles: 1, startSpreadSec: 0 });
    expect(run.stored).toBe(run.result.produced);
    const index = `${run.indexPrefix}-results`;
    const health = await es<{ status: string }>(`/_cluster/health/${index}?wait_for_status=green&timeout=60s`);
    expect(health.status).toBe('green');
    const settings = await es<Record<string, { settings: { index: { number_of_replicas: string } } }>>(`/${index}/_settings`);
    expect(Object.values(settings)[0]!.settings.index.number_of_replicas).toBe('1');
  });
});

describe('a simulated fleet against the cluster', () => {
  it('loses and duplicates nothing when a node is killed (SIGKILL) in the middle of a run and restarted later', async () => {
    let killedAt = -1;
    const run = await fleetRun('kill', {
      agents: 300,
      realIntervalSec: 8,
      cycles: 2,
      at: [
        { simSec: 600, action: async () => ((killedAt = Date.now()), await services('kill-node', '2')) },
        { simSec: 1500, action: () => services('start-node', '2') },
      ],
    });
    expect(killedAt).toBeGreaterThan(0);
    expect(run.result.runs).toBeGreaterThanOrEqual(300);
    expect(run.drained.spoolBytesLeft).toBe(0);
    expect(run.stored).toBe(run.result.produced);
    expect((await services('status', 'elasticsearch')).match(/nodes=3/)).not.toBeNull();
  });

  it('after the whole cluster was unreachable for a simulated 10 minutes, every spool drains on the schedule, without a stampede (the fleet split over 2 processes)', async () => {
    await proxy.reset();
    const AGENTS = 150;
    const INTERVAL = 900;
    const DOWN_AT = 900;
    const UP_AT = DOWN_AT + 600;
    const run = await fleetRun('outage', {
      agents: AGENTS,
      processes: 2,
      realIntervalSec: 10,
      cycles: 3,
      at: [
        { simSec: DOWN_AT, action: () => proxy.configure({ down: true }) },
        { simSec: UP_AT, action: () => proxy.configure({ down: false }) },
      ],
    });
    const stats = await proxy.stats();
    expect(stats.refused).toBeGreaterThan(0);
    expect(run.result.runsSpooled).toBeGreaterThan(0);
    // The spools filled during the outage and were emptied by the agents' own scheduled runs (each agent
    // delivers its spool first at its next run), before the simulation ended.
    const peak = Math.max(0, ...run.samples.filter((s) => s.simSec >= DOWN_AT).map((s) => s.spoolBytes));
    expect(peak).toBeGreaterThan(0);
    const emptyAgain = run.samples.find((s) => s.simSec > UP_AT && s.spoolBytes === 0);
    const series = run.samples.map((s) => `${Math.round(s.simSec)}:${s.spoolBytes}`).join(' ');
    expect(emptyAgain, `spools empty again after the outage (sim s:spool bytes ${series})`).toBeDefined();
    // No stampede: the drain is not one burst when the cluster comes back; for a while after, spools are
    // still waiting for the agents whose turn has not come yet.
    const waiting = run.samples.filter((s) => s.simSec >= UP_AT + 60 && s.simSec <= UP_AT + INTERVAL / 2);
    expect(waiting.length).toBeGreaterThan(0);
    expect(waiting.some((s) => s.spoolBytes > 0)).toBe(true);
    expect(run.drained.spoolBytesLeft).toBe(0);
    expect(run.stored).toBe(run.result.produced);
    // Two processes, each a disjoint half of the fleet on the one simulated time: both met the outage, every
    // agent ran, and the counts summed over them are Elasticsearch's (one run summary per run).
    const slices = run.result.slices as Array<{ first: number; agents: number; runs: number; runsSpooled: number }>;
    expect(slices.map((s) => [s.first, s.agents])).toEqual([
      [0, AGENTS / 2],
      [AGENTS / 2, AGENTS / 2],
    ]);
    for (const slice of slices) expect(slice.runsSpooled).toBeGreaterThan(0);
    const runDocs = await es<{ count: number }>(`/${run.indexPrefix}-runs-*/_count`);
    expect(runDocs.count).toBe(run.result.runs);
    const hosts = await es<{ aggregations: { hosts: { buckets: unknown[] } } }>(`/${run.indexPrefix}-runs-*/_search`, {
      method: 'POST',
      body: JSON.stringify({ size: 0, aggs: { hosts: { terms: { field: 'host.hostname', size: 2 * AGENTS } } } }),
    });
    expect(hosts.aggregations.hosts.buckets).toHaveLength(AGENTS);
  });

  it('with bulk requests answered 429 half of the time, retries with backoff and delivers everything', async () => {
    await proxy.reset();
    await proxy.configure({ reject429: 0.5 });
    try {
      const run = await fleetRun('reject', { agents: 100, realIntervalSec: 6, cycles: 1 });
      const stats = await proxy.stats();
      expect(stats.injected429).toBeGreaterThan(0);
      expect(run.result.retried).toBeGreaterThan(0);
      expect(run.drained.spoolBytesLeft).toBe(0);
      expect(run.stored).toBe(run.result.produced);
    } finally {
      await proxy.configure({ reject429: 0 });
    }
  });

  it('on a slow cluster (+2 s on every bulk response) runs finish within their interval or are reported as overrun, and nothing is lost', async () => {
    await proxy.reset();
    await proxy.configure({ bulkDelayMs: 2000 });
    try {
      const run = await fleetRun('slow', { agents: 100, realIntervalSec: 8, cycles: 1 });
      expect(run.result.runs).toBeGreaterThanOrEqual(100);
      // Every run either finished within its interval or was counted as an overrun by the scheduler.
      expect(run.result.overruns).toBe(run.result.longRuns);
      expect(run.drained.spoolBytesLeft).toBe(0);
      expect(run.stored).toBe(run.result.produced);
    } finally {
      await proxy.configure({ bulkDelayMs: 0 });
    }
  });
});
