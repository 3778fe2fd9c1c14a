// A real 3-node Elasticsearch cluster (tools/services with GATHER_ES_NODES=3, a private state dir, deleted
// afterwards): the templates keep one replica once there is more than one node, and a node killed with
// SIGKILL in the middle of an export loses and duplicates nothing.
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Client } from '@elastic/elasticsearch';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sampleResult } from '../../core/test/contracts/exporter.js';
import { createEsExporter } from '../src/index.js';
import { count, testClient, uniqueName } from './_es.js';

const SERVICES = join(dirname(fileURLToPath(import.meta.url)), '../../../tools/services');
const NODES = 3;
let work: string;
let env: NodeJS.ProcessEnv;
let urls: string[];
let client: Client;

function services(...args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('bash', [SERVICES, ...args], { env, timeout: 300_000 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`tools/services ${args.join(' ')} failed: ${error.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

async function health(index: string): Promise<{ status: string; replicas: string }> {
  const [state, settings] = await Promise.all([
    client.cluster.health({ index, wait_for_status: 'green', timeout: '60s' }),
    client.indices.getSettings({ index, name: 'index.number_of_replicas' }),
  ]);
  return { status: state.status, replicas: String(Object.values(settings)[0]?.settings?.index?.number_of_replicas) };
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'gather-es-cluster-'));
  env = { ...process.env, GATHER_SERVICES_DIR: join(work, 'services'), GATHER_ES_NODES: String(NODES) };
  const printed = await services('start', 'elasticsearch');
  const match = /^GATHER_ES_URLS=(.+)$/m.exec(printed);
  if (!match) throw new Error(`tools/services start elasticsearch printed no GATHER_ES_URLS:\n${printed}`);
  urls = match[1]!.trim().split(',');
  expect(urls).toHaveLength(NODES);
  client = testClient(urls[0]!);
}, 300_000);

afterAll(async () => {
  await client?.close();
  if (env) await services('clean', 'elasticsearch').catch(() => undefined);
  if (work) await rm(work, { recursive: true, force: true });
}, 180_000);

describe(`a real ${NODES}-node Elasticsearch cluster`, () => {
  it('forms one cluster of every node, and `status` shows its health and nodes', async () => {
    const state = await client.cluster.health();
    expect(state.number_of_nodes).toBe(NODES);
    const status = await services('status', 'elasticsearch');
    expect(status).toMatch(/^cluster: health=(green|yellow) nodes=3 /m);
    for (let k = 1; k <= NODES; k++) expect(status).toContain(`gather-es-${k}`);
  });

  it('gets indices with one replica from the default templates (green)', async () => {
    const resultsIndex = `${uniqueName('gather-cluster')}-results`;
    const exporter = createEsExporter({ nodes: urls, resultsIndex, errorsIndex: `${resultsIndex}-errors`, runsIndex: `${resultsIndex}-runs` });
    await exporter.exportResults([sampleResult(0, 1)]);
    expect(await exporter.close()).toMatchObject({ delivered: 1, failed: 0 });
    expect(await health(resultsIndex)).toEqual({ status: 'green', replicas: '1' });
  });

  it('loses and duplicates nothing when a node is killed (SIGKILL) mid-export and restarted later', async () => {
    const resultsIndex = `${uniqueName('gather-cluster-kill')}-results`;
    const exporter = createEsExporter({
      nodes: urls,
      resultsIndex,
      errorsIndex: `${resultsIndex}-errors`,
      runsIndex: `${resultsIndex}-runs`,
      spoolDir: join(work, 'spool'),
      maxBatchDocs: 100,
      maxRetries: 3,
      retryBaseDelayMs: 100,
      requestTimeoutMs: 5000,
      probeIntervalMs: 1000,
    });
    const CHECKS = 30;
    const PER_CHECK = 100;
    const checkResults = (c: number) =>
      Array.from({ length: PER_CHECK }, (_, i) => ({ ...sampleResult(i, c * 1000 + i), run_id: 'cluster-kill', check: `k${String(c).padStart(2, '0')}` }));

    let killed: Promise<string> | undefined;
    for (let c = 0; c < CHECKS; c++) {
      if (c === 10) killed = services('kill-node', '2');
      await exporter.exportResults(checkResults(c));
    }
    await killed;
    const during = await exporter.flush();
    expect(during.failed).toBe(0);
    expect(during.delivered + during.spooled).toBe(CHECKS * PER_CHECK);

    await services('start-node', '2');
    const after = await exporter.flush();
    expect(after).toMatchObject({ delivered: CHECKS * PER_CHECK, spooled: 0, failed: 0, deadLettered: 0 });
    await exporter.close();

    // Ids are unique in an index: the count rules out duplicates; every check has all its results.
    await client.indices.refresh({ index: resultsIndex });
    expect(await count(client, resultsIndex)).toBe(CHECKS * PER_CHECK);
    const perCheck = await client.search({ index: resultsIndex, size: 0, aggs: { checks: { terms: { field: 'check', size: 100 } } } });
    const buckets = (perCheck.aggregations?.checks as { buckets: Array<{ doc_count: number }> }).buckets;
    expect(buckets).toHaveLength(CHECKS);
    expect(buckets.every((b) => b.doc_count === PER_CHECK)).toBe(true);
    expect(await health(resultsIndex)).toEqual({ status: 'green', replicas: '1' });
  });
});
