// Elasticsearch stopped in the middle of an export, then restarted: no document lost, none duplicated.
// The test stops and restarts a real Elasticsearch with tools/services. So as not to pull the shared node
// from under other test files, it runs its own node (tools/services with a private GATHER_SERVICES_DIR and
// port), deleted afterwards.
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Client } from '@elastic/elasticsearch';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sampleResult } from '@gather/core/testing';
import { createEsExporter } from '../src/index.js';
import { count, testClient, uniqueName } from './_es.js';

const SERVICES = join(dirname(fileURLToPath(import.meta.url)), '../../../tools/services');
let work: string;
let env: NodeJS.ProcessEnv;
let url: string;
let client: Client;

function services(...args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('bash', [SERVICES, ...args], { env, timeout: 300_000 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`tools/services ${args.join(' ')} failed: ${error.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'gather-es-outage-'));
  env = { ...process.env, GATHER_SERVICES_DIR: join(work, 'services'), GATHER_ES_PORT: String(await freePort()) };
  const printed = await services('start', 'elasticsearch');
  const match = /^GATHER_ES_URL=(.+)$/m.exec(printed);
  if (!match) throw new Error(`tools/services start elasticsearch printed no GATHER_ES_URL:\n${printed}`);
  url = match[1]!.trim();
  client = testClient(url);
}, 240_000);

afterAll(async () => {
  await client?.close();
  if (env) await services('clean', 'elasticsearch').catch(() => undefined);
  if (work) await rm(work, { recursive: true, force: true });
}, 120_000);

describe('Elasticsearch stopped in the middle of an export', () => {
  it('spools what it could not take, and the next flush after the restart leaves exactly the expected documents', async () => {
    const resultsIndex = `${uniqueName('gather-outage')}-results`;
    const spoolDir = join(work, 'spool');
    const exporter = createEsExporter({
      node: url,
      resultsIndex,
      errorsIndex: `${resultsIndex}-errors`,
      indexSettings: { number_of_replicas: 0 },
      spoolDir,
      maxBatchDocs: 100,
      maxRetries: 2,
      retryBaseDelayMs: 100,
      requestTimeoutMs: 5000,
    });
    const CHECKS = 40;
    const PER_CHECK = 150;
    const checkResults = (c: number) =>
      Array.from({ length: PER_CHECK }, (_, i) => ({
        ...sampleResult(i, c * 1000 + i),
        run_id: 'outage',
        check: `c${String(c).padStart(2, '0')}`,
      }));

    let stopped: Promise<string> | undefined;
    let stoppedDone = false;
    for (let c = 0; c < CHECKS; c++) {
      // Stop Elasticsearch while results keep coming (batches are in flight as it shuts down).
      if (c === 10) stopped = services('stop', 'elasticsearch').finally(() => (stoppedDone = true));
      await exporter.exportResults(checkResults(c));
      if (stopped && !stoppedDone) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await stopped;
    const during = await exporter.flush();
    expect(during.failed).toBe(0);
    expect(during.spooled).toBeGreaterThan(0);
    expect(during.delivered).toBeGreaterThanOrEqual(10 * PER_CHECK - 2 * 100);
    expect(during.delivered + during.spooled).toBe(CHECKS * PER_CHECK);
    expect((await readdir(spoolDir)).filter((f) => f.endsWith('.ndjson')).length).toBeGreaterThan(0);

    await services('start', 'elasticsearch');
    const after = await exporter.flush();
    expect(after).toMatchObject({ delivered: CHECKS * PER_CHECK, spooled: 0, failed: 0, deadLettered: 0 });
    expect(await exporter.close()).toMatchObject({ delivered: CHECKS * PER_CHECK, spooled: 0 });
    expect(await readdir(spoolDir)).toEqual([]);

    // Exactly the expected documents: ids are unique in an index, so the count rules out duplicates,
    // and every check's last result is there.
    expect(await count(client, resultsIndex)).toBe(CHECKS * PER_CHECK);
    const perCheck = await client.search({
      index: resultsIndex,
      size: 0,
      aggs: { checks: { terms: { field: 'check', size: 100 } } },
    });
    const buckets = (perCheck.aggregations!.checks as { buckets: Array<{ doc_count: number }> }).buckets;
    expect(buckets).toHaveLength(CHECKS);
    expect(buckets.every((b) => b.doc_count === PER_CHECK)).toBe(true);
  });
});
