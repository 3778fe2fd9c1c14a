// SIGINT, SIGTERM and SIGHUP to `gather-agent run` at any moment (fetch, checks, export to an Elasticsearch
// that hangs) all end the same way: running checks and their descendants killed, what was collected exported
// or spooled (and deliverable later), temp dir and every lock removed, exit 130.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { join, relative } from 'node:path';
import { Client } from '@elastic/elasticsearch';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { AGENT_CLI, agent, cleanEnv, makeBundleFile, ndjson, tempDir, type CliResult } from './_helpers.js';
import { processesWith, waitFor } from './_process.js';

const esUrl = process.env.GATHER_ES_URL;
if (!esUrl)
  throw new Error('GATHER_ES_URL is not set: run through the vitest "integration" project (tools/vitest-services.ts), or export it.');
const es = new Client({ node: esUrl, requestTimeout: 60_000 });
const id = `${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
const indices = { results: `p9e-signals-results-${id}`, errors: `p9e-signals-errors-${id}`, runs: `p9e-signals-runs-${id}` };

// Loopback servers of the test (a stalled S3, a hung Elasticsearch), closed after each test.
const servers: Array<{ server: Server; sockets: Set<Socket> }> = [];
async function listen(server: Server): Promise<number> {
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  servers.push({ server, sockets });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}
// Agents spawned by a test: killed, with every process a check left (their names carry `id`), even when the
// test failed before stopping them.
const spawned: number[] = [];
const track = (pid: number) => void spawned.push(pid);
afterEach(async () => {
  for (const pid of [...spawned.splice(0), ...processesWith(id)]) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  for (const { server, sockets } of servers.splice(0)) {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  }
});
afterAll(async () => {
  for (const index of Object.values(indices)) {
    await es.indices.delete({ index, ignore_unavailable: true }).catch(() => undefined);
    await es.indices.deleteIndexTemplate({ name: `${index}-gather` }).catch(() => undefined);
  }
  await es.close();
});

/** Accepts connections and never answers: counts the requests that arrived. */
async function silentServer(): Promise<{ port: number; requests: () => number }> {
  let received = 0;
  const server = createServer((socket) => socket.once('data', () => received++));
  return { port: await listen(server), requests: () => received };
}

/** Answers like Elasticsearch (product header, templates, indices) but never answers a _bulk request. */
async function hangingBulkServer(): Promise<{ port: number; bulks: () => number }> {
  let bulks = 0;
  const server = createHttpServer((req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    req.on('end', () => {
      if (req.url?.startsWith('/_bulk')) return void bulks++;
      const missing = req.method === 'GET' && req.url?.startsWith('/_index_template/');
      res.writeHead(missing ? 404 : 200, { 'content-type': 'application/json', 'x-elastic-product': 'Elasticsearch' });
      res.end(req.method === 'HEAD' ? undefined : missing ? '{"index_templates":[]}' : '{"acknowledged":true}');
    });
  });
  return { port: await listen(server), bulks: () => bulks };
}

interface Staged {
  tmp: string;
  stateDir: string;
  spoolDir: string;
  out: string;
}

function stage(): Staged {
  const tmp = tempDir('gather-signals-tmp-');
  return {
    tmp,
    stateDir: tempDir('gather-signals-state-'),
    spoolDir: tempDir('gather-signals-spool-'),
    out: join(tempDir('gather-signals-out-'), 'out.ndjson'),
  };
}

/** Every file under a directory, relative to it. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => relative(dir, join(entry.parentPath, entry.name)));
}

/** The common end of every interrupted run: exit 130, nothing left running, no temp dir, no lock. */
function expectCleanStop(result: CliResult, staged: Staged, marker?: string): void {
  expect(result.signal, result.stderr).toBeNull();
  expect(result.code, result.stderr).toBe(130);
  if (marker) expect(processesWith(marker)).toEqual([]);
  expect(readdirSync(staged.tmp)).toEqual([]);
  expect([...filesUnder(staged.stateDir), ...filesUnder(staged.spoolDir)].filter((file) => file.endsWith('.lock'))).toEqual([]);
}

function spooled(dir: string): Array<{ index: string; id: string; doc: Record<string, unknown> }> {
  return readdirSync(dir)
    .filter((name) => /^spool-\d+\.ndjson$/.test(name))
    .flatMap((name) => ndjson(readFileSync(join(dir, name), 'utf8')) as Array<{ index: string; id: string; doc: Record<string, unknown> }>);
}

const esEnv = (staged: Staged, url: string) =>
  cleanEnv({
    TMPDIR: staged.tmp,
    GATHER_STATE_DIR: staged.stateDir,
    GATHER_SPOOL_DIR: staged.spoolDir,
    GATHER_EXPORTER: 'elasticsearch',
    GATHER_ES_URL: url,
    GATHER_ES_RESULTS_INDEX: indices.results,
    GATHER_ES_ERRORS_INDEX: indices.errors,
    GATHER_ES_RUNS_INDEX: indices.runs,
  });

describe('gather-agent run stopped by a signal', () => {
  it.each(['SIGINT', 'SIGTERM', 'SIGHUP'] as const)(
    '%s during the checks: checks and descendants killed, results so far exported, exit 130',
    async (signal) => {
      const staged = stage();
      const marker = `p9e-sig-checks-${signal}-${id}`;
      const fx = await makeBundleFile({
        'abuse/run-abc': 'output early.result number 42',
        // A check that leaves a grandchild behind in its process group and sleeps.
        'abuse/run-slo': `(exec -a ${marker} sleep 300) & (exec -a ${marker}-grandchild sleep 300) & wait`,
      });
      let pid = 0;
      const running = agent(['run', '--bundle', fx.bundlePath, '--public-key', fx.publicKeyPath, '--out', staged.out], {
        env: cleanEnv({ TMPDIR: staged.tmp, GATHER_STATE_DIR: staged.stateDir }),
        onSpawn: (p) => track((pid = p)),
      });
      // Signalled once the quick check's result is written (checks run side by side) and the slow one sleeps.
      const earlyWritten = () => existsSync(staged.out) && readFileSync(staged.out, 'utf8').includes('early.result');
      await waitFor(() => processesWith(marker).length >= 2 && earlyWritten(), 20_000, 'the sleeping check and the early result');
      process.kill(pid, signal);
      const result = await running;
      expectCleanStop(result, staged, marker);
      const docs = ndjson(readFileSync(staged.out, 'utf8'));
      expect(docs.find((d) => d.kind === 'result')).toMatchObject({ check: 'abc', name: 'early.result', value: 42 });
      expect(docs.find((d) => d.kind === 'error' && d.check === 'slo')).toMatchObject({ reason: 'killed' });
      expect(docs.at(-1)).toMatchObject({ kind: 'run', outcome: 'interrupted' });
    },
  );

  it('SIGTERM while waiting for another run to finish: nothing run, the other run untouched, exit 130', async () => {
    const staged = stage();
    const marker = `p9e-sig-lockwait-${id}`;
    const fx = await makeBundleFile({ 'abuse/run-slo': `(exec -a ${marker} sleep 300) & wait` });
    let holderPid = 0;
    const holder = agent(['run', '--bundle', fx.bundlePath, '--public-key', fx.publicKeyPath, '--out', staged.out], {
      env: cleanEnv({ TMPDIR: staged.tmp, GATHER_STATE_DIR: staged.stateDir }),
      onSpawn: (p) => track((holderPid = p)),
    });
    await waitFor(() => processesWith(marker).length > 0, 20_000, 'the first run holding the lock');
    // Spawned here to watch its log: the signal goes once it says it waits for the lock.
    const waiter = spawn(
      process.execPath,
      [AGENT_CLI, 'run', '--bundle', fx.bundlePath, '--public-key', fx.publicKeyPath, '--out', `${staged.out}.2`, '--lock-wait', '120'],
      {
        env: cleanEnv({ TMPDIR: staged.tmp, GATHER_STATE_DIR: staged.stateDir }),
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    track(waiter.pid!);
    let waiterStderr = '';
    waiter.stderr.on('data', (chunk) => (waiterStderr += chunk));
    const waiterExit = new Promise<number | null>((resolve) => waiter.on('close', (code) => resolve(code)));
    await waitFor(() => waiterStderr.includes('another gather-agent run is in progress'), 20_000, 'the second run waiting for the lock');
    waiter.kill('SIGTERM');
    const waited = { code: await waiterExit, stderr: waiterStderr };
    expect(waited.code, waited.stderr).toBe(130);
    expect(waited.stderr).toMatch(/Interrupted while waiting for another run to finish; nothing was run/);
    expect(processesWith(marker)).toHaveLength(1);
    process.kill(holderPid, 'SIGTERM');
    expectCleanStop(await holder, staged, marker);
  });

  it('SIGTERM during the fetch from a stalled S3: the download is abandoned, the run error and summary exported, exit 130', async () => {
    const staged = stage();
    const s3 = await silentServer();
    const fx = await makeBundleFile({ 'abuse/run-abc': 'output never.run number 1' });
    let pid = 0;
    const running = agent(['run', '--bundle', 's3://gather-stalled/p', '--public-key', fx.publicKeyPath, '--out', staged.out], {
      env: cleanEnv({
        TMPDIR: staged.tmp,
        GATHER_STATE_DIR: staged.stateDir,
        GATHER_S3_ENDPOINT: `http://127.0.0.1:${s3.port}`,
        GATHER_S3_REGION: 'us-east-1',
        AWS_ACCESS_KEY_ID: 'stalled',
        AWS_SECRET_ACCESS_KEY: 'stalled-secret',
        AWS_EC2_METADATA_DISABLED: 'true',
      }),
      onSpawn: (p) => track((pid = p)),
    });
    await waitFor(() => s3.requests() > 0, 20_000, 'a request to the stalled S3');
    const stoppedAt = Date.now();
    process.kill(pid, 'SIGTERM');
    const result = await running;
    expect(Date.now() - stoppedAt).toBeLessThan(20_000);
    expectCleanStop(result, staged);
    const docs = ndjson(readFileSync(staged.out, 'utf8'));
    expect(docs).toMatchObject([
      { kind: 'error', reason: 'run_failed' },
      { kind: 'run', outcome: 'interrupted', checks: { run: 0 } },
    ]);
  });

  it.each([
    ['SIGHUP', 'accepts connections and never answers', silentServer, (s: { requests: () => number }) => s.requests() > 0],
    ['SIGINT', 'answers, then hangs on _bulk', hangingBulkServer, (s: { bulks: () => number }) => s.bulks() > 0],
  ] as const)(
    '%s during the export to an Elasticsearch that %s: in-flight requests aborted, everything spooled within a bounded time, delivered by the next run',
    async (signal, _what, makeServer, reached) => {
      const staged = stage();
      const hung = await makeServer();
      const fx = await makeBundleFile({
        'abuse/run-abc': 'output a.one number 1\noutput a.two number 2',
        'analytics/run-def': `output d.one string '"x"'`,
      });
      let pid = 0;
      const running = agent(['run', '--bundle', fx.bundlePath, '--public-key', fx.publicKeyPath], {
        env: esEnv(staged, `http://127.0.0.1:${hung.port}`),
        onSpawn: (p) => track((pid = p)),
      });
      await waitFor(() => reached(hung as never), 30_000, 'the export to reach the hung server');
      const stoppedAt = Date.now();
      process.kill(pid, signal);
      const result = await running;
      // EXPORT_AFTER_STOP_MS (5 s) for a healthy cluster to finish, then the abort: far below the 30 s request timeout.
      expect(Date.now() - stoppedAt).toBeLessThan(25_000);
      expectCleanStop(result, staged);

      const records = spooled(staged.spoolDir);
      // Daily indices: <index>-YYYY.MM.DD.
      const inIndex = (r: { index: string }, base: string) => r.index.startsWith(`${base}-`);
      const results = records.filter((r) => inIndex(r, indices.results));
      expect(results.map((r) => r.doc.name).sort()).toEqual(['a.one', 'a.two', 'd.one']);
      const runId = results[0]!.doc.run_id;
      expect(records.find((r) => inIndex(r, indices.runs))?.doc).toMatchObject({ run_id: runId, outcome: 'interrupted', spooled: 3 });

      // Nothing lost: the next run, with Elasticsearch back, delivers the spool first.
      const delivered = await agent(['run', '--bundle', fx.bundlePath, '--public-key', fx.publicKeyPath], {
        env: { ...esEnv(staged, esUrl!), TMPDIR: tempDir() },
      });
      expect(delivered.code, delivered.stderr).toBe(0);
      expect(spooled(staged.spoolDir)).toEqual([]);
      await es.indices.refresh({ index: [indices.results, indices.runs] });
      const found = await es.search({ index: indices.results, size: 100, query: { term: { run_id: String(runId) } } });
      expect(found.hits.hits.map((hit) => (hit._source as { name: string }).name).sort()).toEqual(['a.one', 'a.two', 'd.one']);
      const summary = await es.search({ index: indices.runs, query: { term: { run_id: String(runId) } } });
      expect(summary.hits.hits[0]?._source).toMatchObject({ outcome: 'interrupted' });
    },
  );

  it('SIGTERM while only the run summary is being exported (no result changed): exit 130, the summary spooled, delivered by the next run', async () => {
    // Differential results: a second run with nothing changed exports no result while core's run is going;
    // its summary goes out as the exporter closes, after core's run has returned. A stop then is a stop too.
    const staged = stage();
    const fx = await makeBundleFile({ 'abuse/run-abc': 'output same.value number 7' });
    const run = (url: string, tmp = staged.tmp, onSpawn?: (pid: number) => void) =>
      agent(['run', '--bundle', fx.bundlePath, '--public-key', fx.publicKeyPath], {
        env: { ...esEnv(staged, url), TMPDIR: tmp },
        ...(onSpawn ? { onSpawn } : {}),
      });
    const first = await run(esUrl!, tempDir());
    expect(first.code, first.stderr).toBe(0);

    const hung = await hangingBulkServer();
    let pid = 0;
    const running = run(`http://127.0.0.1:${hung.port}`, staged.tmp, (p) => track((pid = p)));
    await waitFor(() => hung.bulks() > 0, 30_000, 'the run summary to reach the hung server');
    process.kill(pid, 'SIGTERM');
    const result = await running;
    expectCleanStop(result, staged);
    expect(result.stderr).toMatch(/run interrupted/);
    const records = spooled(staged.spoolDir);
    expect(records.filter((r) => r.index.startsWith(`${indices.results}-`))).toEqual([]);
    const summary = records.find((r) => r.index.startsWith(`${indices.runs}-`));
    expect(summary?.doc).toMatchObject({ kind: 'run', checks: { run: 1, ok: 1 }, changes: { unchanged: 1 } });

    const delivered = await run(esUrl!, tempDir());
    expect(delivered.code, delivered.stderr).toBe(0);
    expect(spooled(staged.spoolDir)).toEqual([]);
    await es.indices.refresh({ index: `${indices.runs}-*` });
    const found = await es.search({ index: `${indices.runs}-*`, query: { term: { run_id: String(summary!.doc.run_id) } } });
    expect(found.hits.hits).toHaveLength(1);
  });
});
