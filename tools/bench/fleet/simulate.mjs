// The fleet simulation: N agents in this one process, each with its own host identity, state dir and spool,
// running the real code path from parsed check output onward — core's output parser (classifyOutcome), the
// document shape of core's run(), the real Elasticsearch exporter with its on-disk spool and retries, and a
// run summary per run — on the daemon's real Scheduler (grid + splay + first delay), with time compressed
// (a 15-minute interval in, say, 60 s). The check output is a recording of a real run of checks/ on this
// machine (tools/bench/fixtures/checks-run.json), varied per host and per run (see `vary`).
//
// Used by tools/bench/fleet (the full-size benchmark) and by the shortened integration tests in
// packages/exporter-es/test/fleet.integration.test.ts. Imports the built packages (run `pnpm build` first).
import { spawn } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

async function importBuilt(path) {
  const file = join(ROOT, path);
  if (!existsSync(file)) throw new Error(`fleet simulation: ${path} is missing; build first: pnpm build`);
  return import(pathToFileURL(file).href);
}

const { classifyOutcome } = await importBuilt('packages/core/dist/index.js');
const { createEsExporter } = await importBuilt('packages/exporter-es/dist/index.js');
const { Scheduler } = await importBuilt('packages/agent/dist/scheduler.js');
const { DifferentialResults } = await importBuilt('packages/agent/dist/differential.js');

/** The recorded checks of one category: [{ category, check, duration_ms, stdout }]. */
export function loadFixtures(category = 'abuse') {
  const recorded = JSON.parse(readFileSync(join(ROOT, 'tools/bench/fixtures/checks-run.json'), 'utf8'));
  return recorded.checks.filter((c) => c.category === category);
}

/** Deterministic pseudo-random numbers in [0, 1) from a string (host, run, result). */
function hashUnit(text) {
  return createHash('sha256').update(text).digest().readUInt32BE(0) / 2 ** 32;
}

/**
 * The stdout of a check on one host at one run: the recorded results, with each number and string value
 * made host-specific, and changed at this run with probability `changeRate` (a value that changed stays
 * changed: the run index is part of the seed only for the results whose turn it is to change).
 */
export function vary(fixture, host, run, changeRate) {
  const lines = fixture.stdout
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line));
  return `${lines
    .map((result) => {
      // The run at which this result last changed: the latest run r <= run whose draw falls under the rate.
      let since = 0;
      for (let r = run; r > 0; r--) {
        if (hashUnit(`${host}|${result.name}|${r}`) < changeRate) {
          since = r;
          break;
        }
      }
      const seed = hashUnit(`${host}|${result.name}|v${since}`);
      let value = result.value;
      if (result.type === 'number') value = Math.round(seed * 1000);
      else if (result.type === 'string' && since > 0) value = `${result.value}-${Math.round(seed * 1e6)}`;
      return JSON.stringify({ name: result.name, type: result.type, value });
    })
    .join('\n')}\n`;
}

/** A clock for the Scheduler whose time runs `factor` times faster than real time. */
export function compressedClock(factor, start = Date.now()) {
  const realStart = Date.now();
  return {
    now: () => start + (Date.now() - realStart) * factor,
    setTimeout: (callback, ms) => setTimeout(callback, Math.max(0, ms / factor)),
    clearTimeout: (handle) => clearTimeout(handle),
  };
}

function percentile(sorted, p) {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** Starts tools/bench/fleet/proxy.mjs in its own process in front of the given nodes. */
export async function startProxy(upstreams) {
  const child = spawn(process.execPath, [join(ROOT, 'tools/bench/fleet/proxy.mjs'), '--upstream', upstreams.join(',')], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const url = await new Promise((resolveUrl, reject) => {
    const lines = createInterface({ input: child.stdout });
    lines.once('line', (line) => {
      const match = /^PROXY_READY (.+)$/.exec(line);
      if (match) resolveUrl(match[1]);
      else reject(new Error(`fleet proxy printed: ${line}`));
    });
    child.once('exit', (code) => reject(new Error(`fleet proxy exited with ${code}`)));
  });
  const call = async (path, body) => {
    const response = await fetch(`${url}${path}`, body === undefined ? {} : { method: 'POST', body: JSON.stringify(body) });
    return response.json();
  };
  return {
    url,
    pid: child.pid,
    stats: () => call('/__proxy/stats'),
    configure: (config) => call('/__proxy/config', config),
    reset: () => call('/__proxy/reset', {}),
    stop: () =>
      new Promise((resolveStop) => {
        if (child.exitCode !== null) return resolveStop();
        child.once('exit', () => resolveStop());
        child.kill('SIGTERM');
      }),
  };
}

/** CPU seconds and peak RSS of a process, from /proc (Linux). */
export async function processUsage(pid) {
  const statText = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = statText.slice(statText.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return { cpuSeconds: ticks / 100, peakRssMb: hwm ? Number(hwm[1]) / 1024 : 0 };
}

/** Bytes of the spool segments (`*.ndjson`) below dir: what is waiting for Elasticsearch (no lock files). */
async function spoolBytes(dir) {
  let total = 0;
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) total += await spoolBytes(path);
    else if (entry.name.endsWith('.ndjson')) total += (await stat(path).catch(() => ({ size: 0 }))).size;
  }
  return total;
}

/**
 * Runs the fleet. Options:
 *   esUrl          where the agents send their documents (the proxy in front of the cluster)
 *   workDir        state and spool dirs of the agents go below it (agent-<i>/spool)
 *   indexPrefix    the agents write <prefix>-results, -errors, -runs
 *   agents         number of simulated agents (10,000)
 *   intervalSec    simulated interval of the abuse runs (900, the daemon's default)
 *   realIntervalSec  real seconds one interval takes (60): the time compression is intervalSec / this
 *   cycles         intervals to simulate after the first delay (2)
 *   splayPct, firstDelaySec  the daemon's schedule (10 %, 30 s)
 *   startSpreadSec the agents' daemons start at uniformly random times within this window (default: one
 *                  interval, a fleet in its steady state; 0 = every daemon restarted at the same moment)
 *   changeRate     share of results whose value changes at a run (0.02)
 *   exporter       extra options for createEsExporter (the retry backoff and the probe interval after an
 *                  outage are compressed like the schedule unless given here)
 *   at             [{ simSec, action: async () => {} }] fault injections at simulated seconds after start
 *   onSample       called every `sampleEveryMs` (1000) with the live counters
 *   mode           'snapshot' (every result every run) or 'differential' (the agent's DifferentialResults
 *                  in front of the exporter, its state in the agent's dir: only added/changed/removed)
 * Like the agent with Elasticsearch, the exporter also keeps the current state (<prefix>-latest, -hosts).
 * Returns the counters; documents produced are every result, error and run summary the agents handed to
 * their Elasticsearch exporters (each has a deterministic id, so Elasticsearch holds each at most once).
 */
export async function simulateFleet(options) {
  const agents = options.agents ?? 10_000;
  const intervalSec = options.intervalSec ?? 900;
  const realIntervalSec = options.realIntervalSec ?? 60;
  const factor = intervalSec / realIntervalSec;
  const cycles = options.cycles ?? 2;
  const spec = { everySec: intervalSec, splayPct: options.splayPct ?? 10, firstDelaySec: options.firstDelaySec ?? 30 };
  const changeRate = options.changeRate ?? 0.02;
  const mode = options.mode ?? 'snapshot';
  const fixtures = loadFixtures('abuse');
  const indices = {
    resultsIndex: `${options.indexPrefix}-results`,
    errorsIndex: `${options.indexPrefix}-errors`,
    runsIndex: `${options.indexPrefix}-runs`,
  };
  const bundle = { version: 'fleet-sim', sha256: createHash('sha256').update('fleet-sim').digest('hex') };
  const counters = {
    runs: 0,
    overruns: 0,
    skipped: 0,
    produced: 0,
    delivered: 0,
    failed: 0,
    recovered: 0,
    runErrors: 0,
    retried: 0,
    deadLettered: 0,
    dropped: 0,
    runsSpooled: 0,
    /** Runs that took longer than their interval (the scheduler reports each as an overrun). */
    longRuns: 0,
    runDurationsMs: [],
    spoolPeakBytes: 0,
    inFlightRuns: 0,
    maxInFlightRuns: 0,
  };
  // The exporter's waits (retry backoff, the pause after an outage) are compressed like the schedule, so a
  // simulated outage of 10 minutes is as long, against them, as a real one.
  const compressed = (ms) => Math.max(1, Math.round(ms / factor));
  const exporterFor = (agentDir) =>
    createEsExporter({
      node: options.esUrl,
      ...indices,
      spoolDir: join(agentDir, 'spool'),
      currentState: true,
      latestIndex: `${options.indexPrefix}-latest`,
      hostsIndex: `${options.indexPrefix}-hosts`,
      retryBaseDelayMs: compressed(200),
      retryMaxDelayMs: compressed(5000),
      probeIntervalMs: compressed(30_000),
      ...options.exporter,
    });

  async function runAgent(i, slot, dueAt) {
    const host = { hostname: `sim-${String(i).padStart(5, '0')}`, id: `sim-machine-id-${i}` };
    const cloud = { instance: { id: `i-${(0x10000000 + i).toString(16)}` } };
    const agentDir = join(options.workDir, `agent-${i}`);
    const runId = randomUUID();
    const started = clock.now();
    counters.runs++;
    counters.inFlightRuns++;
    counters.maxInFlightRuns = Math.max(counters.maxInFlightRuns, counters.inFlightRuns);
    const es = exporterFor(agentDir);
    // What reaches the Elasticsearch exporter is what was produced (after the differential filter).
    const counting = {
      name: es.name,
      exportResults: (docs) => ((counters.produced += docs.length), es.exportResults(docs)),
      exportErrors: (docs) => ((counters.produced += docs.length), es.exportErrors(docs)),
      exportRunSummary: (doc) => (counters.produced++, es.exportRunSummary(doc)),
      flush: () => es.flush(),
      close: () => es.close(),
      summary: () => es.summary(),
    };
    const differential =
      mode === 'differential'
        ? new DifferentialResults({ stateDir: join(agentDir, 'state'), mode, snapshotIntervalSec: 86_400 })
        : undefined;
    const exporter = differential ? differential.wrap(counting) : counting;
    try {
      let results = 0;
      for (const fixture of fixtures) {
        const outcome = {
          check: { id: fixture.check, category: fixture.category },
          exitCode: 0,
          signal: null,
          stdout: vary(fixture, host.hostname, slot, changeRate),
          stderr: '',
          durationMs: fixture.duration_ms,
          timedOut: false,
          stdoutOverflow: false,
          aborted: false,
        };
        const classified = classifyOutcome(outcome, 60, 1024 * 1024);
        const base = {
          '@timestamp': new Date(clock.now()).toISOString(),
          run_id: runId,
          host,
          cloud,
          agent: { version: 'fleet-sim' },
          bundle,
        };
        const docs = classified.results.map((result) => ({
          kind: 'result',
          ...base,
          category: fixture.category,
          check: fixture.check,
          duration_ms: fixture.duration_ms,
          ...result,
        }));
        results += docs.length;
        await exporter.exportResults(docs);
      }
      const totals = await exporter.flush();
      const elapsedMs = clock.now() - started;
      await exporter.exportRunSummary({
        kind: 'run',
        '@timestamp': new Date(clock.now()).toISOString(),
        run_id: runId,
        host,
        cloud,
        agent: { version: 'fleet-sim' },
        bundle,
        category: 'abuse',
        outcome: totals.spooled > 0 ? 'spooled' : 'ok',
        checks: { run: fixtures.length, ok: fixtures.length, failed: 0, timed_out: 0 },
        results,
        errors: 0,
        export: {
          delivered: totals.delivered,
          spooled: totals.spooled,
          failed: totals.failed,
          retried: 0,
          dead_lettered: 0,
          dropped: 0,
          unreadable: 0,
          recovered: 0,
        },
        ...(differential ? differential.summaryFields() : {}),
        spooled: totals.spooled,
        bytes_fetched: 0,
        bundle_unchanged: true,
        duration_ms: elapsedMs,
        peak_rss_bytes: 0,
        trigger: 'schedule',
        overrun: clock.now() - dueAt > intervalSec * 1000,
      });
    } finally {
      const summary = await exporter.close().catch(() => es.summary());
      await differential?.commit(summary, summary.failed > 0);
      counters.delivered += summary.delivered;
      counters.recovered += summary.recovered;
      counters.failed += summary.failed;
      counters.retried += summary.retried;
      counters.deadLettered += summary.deadLettered;
      counters.dropped += summary.dropped;
      if (summary.spooled > 0) counters.runsSpooled++;
      const durationMs = clock.now() - started;
      counters.runDurationsMs.push(durationMs);
      if (durationMs > intervalSec * 1000) counters.longRuns++;
      counters.inFlightRuns--;
    }
  }

  // The operator installs the templates and indices before the fleet reports (one exporter, one document):
  // otherwise every agent's first run PUTs the same templates and creates the same indices at once, a storm
  // of cluster state updates that stalls the first runs for many seconds (measured: 150 agents, 10 s).
  const setup = exporterFor(join(options.workDir, 'setup'));
  await setup.exportResults([
    {
      kind: 'result',
      '@timestamp': new Date().toISOString(),
      run_id: randomUUID(),
      host: { hostname: 'fleet-setup' },
      agent: { version: 'fleet-sim' },
      bundle,
      category: 'abuse',
      check: 'set',
      duration_ms: 0,
      name: 'fleet.setup',
      type: 'boolean',
      value: true,
    },
  ]);
  await setup.close();
  counters.produced++;

  const clock = compressedClock(factor);
  const startedSim = clock.now();
  const startSpreadSec = options.startSpreadSec ?? intervalSec;
  const endSim = startedSim + (startSpreadSec + spec.firstDelaySec + cycles * intervalSec) * 1000;
  const realStarted = Date.now();
  const cpuStarted = process.cpuUsage();

  const schedulers = [];
  for (let i = 0; i < agents; i++) {
    await mkdir(join(options.workDir, `agent-${i}`), { recursive: true, mode: 0o700 });
    const scheduler = new Scheduler({
      clock,
      jobs: [{ name: 'abuse', spec, run: ({ slot, dueAt }) => runAgent(i, slot, dueAt) }],
      onOverrun: () => counters.overruns++,
      onSkip: () => counters.skipped++,
      onError: (_job, error) => {
        counters.runErrors++;
        options.onError?.(error);
      },
    });
    schedulers.push(scheduler);
  }
  const starts = schedulers.map((scheduler) => clock.setTimeout(() => scheduler.start(), Math.random() * startSpreadSec * 1000));

  const faults = [...(options.at ?? [])].sort((a, b) => a.simSec - b.simSec);
  const pendingFaults = [];
  for (const fault of faults) {
    pendingFaults.push(
      new Promise((resolveFault) =>
        clock.setTimeout(() => Promise.resolve(fault.action()).then(resolveFault, resolveFault), fault.simSec * 1000),
      ),
    );
  }
  const sampler = setInterval(async () => {
    const bytes = await spoolBytes(options.workDir);
    counters.spoolPeakBytes = Math.max(counters.spoolPeakBytes, bytes);
    options.onSample?.({ simSec: (clock.now() - startedSim) / 1000, spoolBytes: bytes, ...counters, runDurationsMs: undefined });
  }, options.sampleEveryMs ?? 1000);

  await new Promise((resolveEnd) => setTimeout(resolveEnd, (endSim - clock.now()) / factor));
  for (const start of starts) clock.clearTimeout(start);
  for (const scheduler of schedulers) scheduler.stop();
  await Promise.all(schedulers.flatMap((s) => s.running()));
  await Promise.all(pendingFaults);
  clearInterval(sampler);
  counters.spoolPeakBytes = Math.max(counters.spoolPeakBytes, await spoolBytes(options.workDir));
  const realSeconds = (Date.now() - realStarted) / 1000;
  const cpu = process.cpuUsage(cpuStarted);

  const sortedDurations = [...counters.runDurationsMs].sort((a, b) => a - b);
  return {
    ...counters,
    runDurationsMs: undefined,
    factor,
    realSeconds,
    runDurationP50SimSec: percentile(sortedDurations, 50) / 1000,
    runDurationP99SimSec: percentile(sortedDurations, 99) / 1000,
    simulatorCpuSeconds: (cpu.user + cpu.system) / 1e6,
    simulatorPeakRssMb: process.resourceUsage().maxRSS / 1024,
    indices,
  };
}

/**
 * What the agents' spools still hold after the run: each agent with a spool is drained, as its next run
 * would (a fresh exporter flushes the spool first), until every spool is empty, `rounds` passes ran, or
 * `timeoutSec` (600) passed: a crushed cluster can need more than a few passes.
 * Returns the agents that had a spool, the documents recovered, the spool bytes left, and the time taken.
 */
export async function drainSpools(options) {
  const started = Date.now();
  let recovered = 0;
  let agents = 0;
  const deadline = started + (options.timeoutSec ?? 600) * 1000;
  for (let round = 0; round < (options.rounds ?? Number.POSITIVE_INFINITY) && (round === 0 || Date.now() < deadline); round++) {
    const withSpool = [];
    for (const name of await readdir(options.workDir)) {
      if ((await spoolBytes(join(options.workDir, name, 'spool'))) > 0) withSpool.push(join(options.workDir, name));
    }
    if (round === 0) agents = withSpool.length;
    if (withSpool.length === 0) break;
    if (round > 0) await new Promise((resolveWait) => setTimeout(resolveWait, Math.min(5000, 1000 * round)));
    const queue = [...withSpool];
    const workers = Array.from({ length: options.concurrency ?? 32 }, async () => {
      for (let dir = queue.shift(); dir; dir = queue.shift()) {
        const exporter = createEsExporter({
          node: options.esUrl,
          resultsIndex: `${options.indexPrefix}-results`,
          errorsIndex: `${options.indexPrefix}-errors`,
          runsIndex: `${options.indexPrefix}-runs`,
          spoolDir: join(dir, 'spool'),
          ...options.exporter,
        });
        const totals = await exporter.close().catch(() => exporter.summary());
        recovered += totals.recovered ?? 0;
      }
    });
    await Promise.all(workers);
  }
  let spoolBytesLeft = 0;
  for (const name of await readdir(options.workDir)) spoolBytesLeft += await spoolBytes(join(options.workDir, name, 'spool'));
  return { agents, recovered, spoolBytesLeft, seconds: (Date.now() - started) / 1000 };
}

/** Documents of the agents' runs (results, errors, run summaries; every daily index), after a refresh. */
export async function countStored(esUrl, indexPrefix) {
  const pattern = ['results', 'errors', 'runs'].map((kind) => `${indexPrefix}-${kind}-*`).join(',');
  await fetch(`${esUrl}/${pattern}/_refresh`, { method: 'POST' });
  const response = await fetch(`${esUrl}/${pattern}/_count`);
  const body = await response.json();
  if (typeof body.count !== 'number') throw new Error(`count of ${pattern} failed: ${JSON.stringify(body)}`);
  return body.count;
}

/** Primary store bytes per stored run document (results, errors, runs; after a forced merge to one segment). */
export async function storeBytesPerDoc(esUrl, indexPrefix) {
  const pattern = ['results', 'errors', 'runs'].map((kind) => `${indexPrefix}-${kind}-*`).join(',');
  await fetch(`${esUrl}/${pattern}/_forcemerge?max_num_segments=1`, { method: 'POST' });
  const stats = await (await fetch(`${esUrl}/${pattern}/_stats/store,docs`)).json();
  const primaries = stats?._all?.primaries;
  return primaries?.docs?.count ? primaries.store.size_in_bytes / primaries.docs.count : 0;
}

export async function removeIndices(esUrl, indexPrefix) {
  const listed = await (await fetch(`${esUrl}/_cat/indices/${indexPrefix}-*?format=json&h=index`)).json().catch(() => []);
  for (const { index } of Array.isArray(listed) ? listed : []) await fetch(`${esUrl}/${index}`, { method: 'DELETE' });
  const templates = await (await fetch(`${esUrl}/_index_template/${indexPrefix}-*`)).json().catch(() => ({}));
  for (const { name } of templates.index_templates ?? []) await fetch(`${esUrl}/_index_template/${name}`, { method: 'DELETE' });
}

export async function removeWork(dir) {
  await rm(dir, { recursive: true, force: true });
}
