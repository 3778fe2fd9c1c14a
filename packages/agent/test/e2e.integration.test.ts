// End to end, against the real S3 server and the real Elasticsearch node of tools/services: a bundle is
// published to S3 as CI does, `gather-agent daemon` runs on short intervals with its configuration in the
// environment, and the results are read back from Elasticsearch.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from '@elastic/elasticsearch';
import { afterAll, describe, expect, it } from 'vitest';
import { buildBundle, generateSigningKeyPair } from '@gather/checks-bundler';
import { publishBundle } from '@gather/fetcher-s3/publish';
import { AGENT_CLI, agent, makeChecksDir, tempDir } from './_helpers.js';
import { processesWith, waitFor } from './_process.js';

function required(name: string): string {
  const value = process.env[name];
  if (!value) {
    throw new Error(
      `${name} is not set: run this test through the vitest "integration" project (tools/vitest-services.ts starts ` +
        'Elasticsearch and S3), or export the lines printed by "tools/services start".',
    );
  }
  return value;
}

const services = {
  esUrl: required('GATHER_ES_URL'),
  s3Endpoint: required('GATHER_S3_ENDPOINT'),
  accessKeyId: required('GATHER_S3_ACCESS_KEY_ID'),
  secretAccessKey: required('GATHER_S3_SECRET_ACCESS_KEY'),
  bucket: required('GATHER_S3_BUCKET'),
};

const id = `${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
const resultsIndex = `gather-agent-e2e-results-${id}`;
const errorsIndex = `gather-agent-e2e-errors-${id}`;
const runsIndex = `gather-agent-e2e-runs-${id}`;
const es = new Client({ node: services.esUrl, requestTimeout: 60_000 });

afterAll(async () => {
  for (const index of [resultsIndex, errorsIndex, runsIndex, `${runsIndex}-latest`, `${runsIndex}-hosts`]) {
    await es.indices.delete({ index: [index, `${index}-2*`], ignore_unavailable: true, allow_no_indices: true }).catch(() => undefined);
    await es.indices.deleteIndexTemplate({ name: `${index}-gather` }).catch(() => undefined);
  }
  await es.close();
});

async function search(index: string): Promise<Array<Record<string, unknown>>> {
  const exists = await es.indices.exists({ index });
  if (!exists) return [];
  await es.indices.refresh({ index });
  const response = await es.search<Record<string, unknown>>({ index, size: 1000, query: { match_all: {} } });
  return response.hits.hits.map((hit) => hit._source!);
}

describe('gather-agent daemon on a VM: bundle from S3, results to Elasticsearch', () => {
  it('fetches the published bundle, runs abuse on its schedule and analytics once, indexes the results, stops cleanly on SIGTERM', async () => {
    const marker = `gather-e2e-${id}`;
    const keys = generateSigningKeyPair();
    const prefix = `agent-e2e/${id}`;
    const publish = async (value: number) => {
      const checksDir = makeChecksDir({
        'abuse/run-abc': `(exec -a ${marker} sleep 0.3) & wait; output miner.found boolean false`,
        'abuse/run-abd': `output bundle.value number ${value}`,
        'analytics/run-def': `output shell.login string '"bash"'`,
      });
      const built = await buildBundle({ checksDir, privateKeyPem: keys.privateKeyPem });
      const published = await publishBundle({
        endpoint: services.s3Endpoint,
        region: 'us-east-1',
        credentials: { accessKeyId: services.accessKeyId, secretAccessKey: services.secretAccessKey },
        bucket: services.bucket,
        prefix,
        bundle: built.bytes,
        publicKeyPem: keys.publicKeyPem,
      });
      expect(published).toMatchObject({ version: built.manifest.version, pointerMoved: true });
      return built.manifest.version;
    };
    const v1 = await publish(1);

    const dir = tempDir('gather-e2e-');
    const publicKeyPath = join(dir, 'signing.pub.pem');
    writeFileSync(publicKeyPath, keys.publicKeyPem);
    const tmp = tempDir('gather-e2e-tmp-');
    // Only what a VM has: the configuration in GATHER_* and S3 credentials in the AWS SDK's standard
    // variables (the test's own GATHER_S3_* connection settings are not passed on).
    const env: Record<string, string> = Object.fromEntries(
      Object.entries(process.env).filter(
        (entry): entry is [string, string] => entry[1] !== undefined && !entry[0].startsWith('GATHER_') && !entry[0].startsWith('AWS_'),
      ),
    );
    Object.assign(env, {
      GATHER_BUNDLE: `s3://${services.bucket}/${prefix}`,
      GATHER_PUBLIC_KEY: publicKeyPath,
      GATHER_S3_ENDPOINT: services.s3Endpoint,
      GATHER_S3_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: services.accessKeyId,
      AWS_SECRET_ACCESS_KEY: services.secretAccessKey,
      GATHER_EXPORTER: 'elasticsearch',
      GATHER_ES_URL: services.esUrl,
      GATHER_ES_RESULTS_INDEX: resultsIndex,
      GATHER_ES_ERRORS_INDEX: errorsIndex,
      GATHER_ES_RUNS_INDEX: runsIndex,
      GATHER_ES_LATEST_INDEX: `${runsIndex}-latest`,
      GATHER_ES_HOSTS_INDEX: `${runsIndex}-hosts`,
      GATHER_STATE_DIR: join(dir, 'state'),
      GATHER_SPOOL_DIR: join(dir, 'spool'),
      GATHER_ABUSE_EVERY_SEC: '3',
      GATHER_ABUSE_FIRST_DELAY_SEC: '0',
      GATHER_ANALYTICS_FIRST_DELAY_SEC: '2',
      GATHER_INSTANCE_ID: `i-${id}`,
      GATHER_LOG_LEVEL: 'info',
      TMPDIR: tmp,
    });
    // Before enabling the service: a dry run and verify check the configuration, S3 access and the signature.
    const dry = await agent(['run', '--dry-run'], { env });
    // stderr holds only JSON log lines (e.g. a dependency's warning), nothing else.
    expect(dry.stderr.split('\n').filter((line) => line && !line.startsWith('{'))).toEqual([]);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toMatch(
      new RegExp(
        `^ok: bundle ${v1} .*\\nabuse: abc abd\\nanalytics: def\\ndry run: would run 3 checks from s3://${services.bucket}/${prefix}/${v1}.tar at ${services.s3Endpoint} with the elasticsearch exporter; nothing was run or exported\\.\\n$`,
      ),
    );
    expect((await agent(['verify'], { env })).stdout).toMatch(new RegExp(`^ok: bundle ${v1} `));
    expect(await es.indices.exists({ index: resultsIndex })).toBe(false);

    const child = spawn(process.execPath, [AGENT_CLI, 'daemon'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.stdout.resume();
    const exit = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    const logs = () =>
      stderr
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    try {
      // Two abuse runs and the analytics run of v1 reach Elasticsearch.
      await waitFor(
        async () => {
          // Differential results: the second abuse run exports no unchanged result, but its run summary.
          const docs = await search(resultsIndex);
          const abuseRuns = (await search(runsIndex)).filter((d) => d.category === 'abuse' && d.outcome === 'ok');
          return abuseRuns.length >= 2 && docs.some((d) => d.category === 'abuse') && docs.some((d) => d.category === 'analytics');
        },
        60_000,
        'two abuse runs and one analytics run in Elasticsearch',
      );
      // CI publishes a new bundle: the next runs use it without a restart.
      const v2 = await publish(2);
      await waitFor(async () => (await search(resultsIndex)).some((d) => d.check === 'abd' && d.value === 2), 30_000, 'results of v2');

      const docs = await search(resultsIndex);
      expect(docs.find((d) => d.check === 'abd' && d.value === 1)).toMatchObject({
        kind: 'result',
        category: 'abuse',
        name: 'bundle.value',
        bundle: { version: v1 },
        host: { hostname: expect.any(String) },
        cloud: { instance: { id: `i-${id}` } },
        agent: { version: expect.any(String) },
      });
      expect(docs.find((d) => d.check === 'abd' && d.value === 2)).toMatchObject({ bundle: { version: v2 } });
      expect(docs.find((d) => d.check === 'def')).toMatchObject({
        category: 'analytics',
        name: 'shell.login',
        value: 'bash',
        bundle: { version: v1 },
      });
      expect(docs.filter((d) => d.category === 'analytics').length).toBe(1); // analytics runs daily: once
      expect(await search(errorsIndex)).toEqual([]);
      expect(stderr.split('\n').filter((line) => line && !line.startsWith('{'))).toEqual([]);

      // One run summary per run in Elasticsearch: the bundle is downloaded once per version; unchanged polls
      // transfer nothing. The log has them too.
      const runs = await search(runsIndex);
      expect(runs.length).toBeGreaterThanOrEqual(3);
      for (const run of runs) {
        // Whether a run overran its 3 s interval depends on the machine's load; overruns are specified in daemon.test.ts.
        expect(run).toMatchObject({ kind: 'run', trigger: 'schedule', outcome: 'ok', spooled: 0, checks: { failed: 0, timed_out: 0 } });
        expect(run.peak_rss_bytes).toBeGreaterThan(0);
      }
      expect(runs.filter((r) => r.category === 'analytics')).toMatchObject([{ checks: { run: 1, ok: 1 }, results: 1 }]);
      expect(runs.filter((r) => (r.bytes_fetched as number) > 0).length).toBeGreaterThanOrEqual(2);
      expect(runs.some((r) => r.bytes_fetched === 0 && r.bundle_unchanged === true)).toBe(true);
      // Differential: an abuse run of an unchanged bundle exported no result, and says how many were unchanged.
      expect(
        runs.some(
          (r) =>
            r.category === 'abuse' &&
            (r.changes as { mode: string; unchanged: number } | undefined)?.mode === 'differential' &&
            (r.changes as { unchanged: number }).unchanged > 0,
        ),
      ).toBe(true);
      // The current state: one host document, the latest results.
      expect(await search(`${runsIndex}-hosts`)).toMatchObject([
        { runs: { abuse: { outcome: 'ok' }, analytics: { outcome: 'ok' } }, agent: { version: expect.any(String) } },
      ]);
      expect((await search(`${runsIndex}-latest`)).some((d) => d.check === 'def' && d.value === 'bash')).toBe(true);
      // A run is logged after its summary was delivered: every logged run is in Elasticsearch.
      const logged = logs().filter((l) => l.msg === 'run completed');
      expect(logged.length).toBeGreaterThanOrEqual(3);
      expect(runs.map((r) => r.run_id)).toEqual(expect.arrayContaining(logged.map((l) => l.run_id)));
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exit).toBe(0);
    expect(processesWith(marker)).toEqual([]);
    expect(readdirSync(tmp)).toEqual([]);
    expect(logs().at(-1)).toMatchObject({ msg: 'daemon stopped' });
  });
});
