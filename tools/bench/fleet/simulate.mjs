// The fleet simulation: N agents (agents.mjs: the real code path from parsed check output onward, on the
// daemon's real Scheduler, time-compressed), split into slices of consecutive agents, each slice in an OS
// process of its own (slice-process.mjs), all on one simulated time. This process installs the indices,
// injects the faults, samples the spools and sums what the slices report. The split is for file
// descriptors: every agent whose run is queued holds some (its spool segment and lock, its sockets), and
// one process of 10,000 agents on a saturated cluster ran out of them (EMFILE, documents counted failed).
//
// Used by tools/bench/fleet (the full-size benchmark) and by the shortened integration tests in
// packages/agent/test/fleet.integration.test.ts. Imports the built packages (run `pnpm build` first).
import { fork, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { BUNDLE, ROOT, compressedClock, createEsExporter, exporterOptions } from './agents.mjs';

export { ROOT };

/**
 * Agents one process simulates by default. A run in flight holds a descriptor per request in flight and its
 * spool segment while it spools; the one process of 10,000 agents ran out at 20,000 (this machine's hard
 * limit), about 2 per agent with nearly every run queued. At that rate 2,500 agents need about 5,000, a
 * quarter of the limit: 4 processes for the default 10,000 agents.
 */
export const AGENTS_PER_PROCESS = 2500;

export function defaultProcesses(agents) {
  return Math.max(1, Math.ceil(agents / AGENTS_PER_PROCESS));
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

/** The counters every slice keeps, summed over the slices. */
const SUMMED = [
  'runs',
  'overruns',
  'skipped',
  'produced',
  'delivered',
  'failed',
  'recovered',
  'runErrors',
  'retried',
  'deadLettered',
  'dropped',
  'runsSpooled',
  'longRuns',
  'inFlightRuns',
];

function sumOf(countersList) {
  return Object.fromEntries(SUMMED.map((key) => [key, countersList.reduce((n, c) => n + (c?.[key] ?? 0), 0)]));
}

/**
 * Starts one slice in a process of its own and sends it its options; `onReport` gets its samples and its
 * result. Returns { pid, ready, result, start(startAtMs), stop() }: `ready` and `result` reject if the
 * process ends before them.
 */
function startSlice(sliceOptions, onReport) {
  const child = fork(join(ROOT, 'tools/bench/fleet/slice-process.mjs'), [], {
    execArgv: [],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  let readyDone;
  let resultDone;
  const ready = new Promise((resolveReady, reject) => (readyDone = { resolveReady, reject }));
  const result = new Promise((resolveResult, reject) => (resultDone = { resolveResult, reject }));
  // Awaited later (or never, when another slice failed first): not an unhandled rejection meanwhile.
  ready.catch(() => undefined);
  result.catch(() => undefined);
  child.on('message', (message) => {
    if (message.type === 'ready') return readyDone.resolveReady();
    onReport(message);
    if (message.type === 'result') resultDone.resolveResult(message);
  });
  // 'close', not 'exit': it comes after the IPC channel closed, so after the result if one was sent.
  child.once('close', (code, signal) => {
    const last = sliceOptions.first + sliceOptions.agents - 1;
    const error = new Error(`fleet simulation: the process of agents ${sliceOptions.first}-${last} ended (${signal ?? `exit ${code}`})`);
    readyDone.reject(error);
    resultDone.reject(error);
  });
  child.send({ type: 'prepare', options: sliceOptions });
  return {
    pid: child.pid,
    ready,
    result,
    start: (startAtMs) => child.send({ type: 'start', startAtMs }),
    stop: () => child.exitCode === null && child.signalCode === null && child.kill(),
  };
}

/** The operator's setup, once for the fleet: templates and indices, by one exporter sending one document. */
async function installIndices(options) {
  const setup = createEsExporter({ ...exporterOptions(options), spoolDir: join(options.workDir, 'setup') });
  await setup.exportResults([
    {
      kind: 'result',
      '@timestamp': new Date().toISOString(),
      run_id: randomUUID(),
      host: { hostname: 'fleet-setup' },
      agent: { version: 'fleet-sim' },
      bundle: BUNDLE,
      category: 'abuse',
      check: 'set',
      duration_ms: 0,
      name: 'fleet.setup',
      type: 'boolean',
      value: true,
    },
  ]);
  await setup.close();
}

/**
 * Runs the fleet. Options:
 *   esUrl          where the agents send their documents (the proxy in front of the cluster)
 *   workDir        state and spool dirs of the agents go below it (agent-<i>/spool)
 *   indexPrefix    the agents write <prefix>-results, -errors, -runs
 *   agents         number of simulated agents (10,000)
 *   processes      OS processes simulating them, each a slice of consecutive agents (default: one per
 *                  AGENTS_PER_PROCESS, 2,500, started agents, so 4 for 10,000)
 *   intervalSec    simulated interval of the abuse runs (900, the daemon's default)
 *   realIntervalSec  real seconds one interval takes (60): the time compression is intervalSec / this
 *   cycles         intervals to simulate after the first delay (2)
 *   splayPct, firstDelaySec  the daemon's schedule (10 %, 30 s)
 *   startSpreadSec the agents' daemons start at uniformly random times within this window (default: one
 *                  interval, a fleet in its steady state; 0 = every daemon restarted at the same moment)
 *   changeRate     share of results whose value changes at a run (0.02)
 *   exporter       extra options for createEsExporter, plain values and `log` (the retry backoff and the
 *                  probe interval after an outage are compressed like the schedule unless given here)
 *   at             [{ simSec, action: async () => {} }] fault injections at simulated seconds after start
 *   onSample       called every `sampleEveryMs` (1000) with the spool bytes and the slices' live counters
 *   onError        called with each run's error (from any slice)
 *   mode           'snapshot' (every result every run) or 'differential' (the agent's DifferentialResults
 *                  in front of the exporter, its state in the agent's dir: only added/changed/removed)
 * Like the agent with Elasticsearch, the exporter also keeps the current state (<prefix>-latest, -hosts).
 * Returns the counters summed over the slices (and `slices`, each one's own); documents produced are every
 * result, error and run summary the agents handed to their Elasticsearch exporters, and the setup document
 * (each has a deterministic id, so Elasticsearch holds each at most once).
 */
export async function simulateFleet(options) {
  const agents = options.agents ?? 10_000;
  const intervalSec = options.intervalSec ?? 900;
  const factor = intervalSec / (options.realIntervalSec ?? 60);
  const processes = Math.min(agents, Math.max(1, options.processes ?? defaultProcesses(agents)));
  const sampleEveryMs = options.sampleEveryMs ?? 1000;
  const { log, ...plainExporter } = options.exporter ?? {};
  // What every slice gets: plain values only (they cross a process boundary); log lines come back by message.
  const shared = {
    esUrl: options.esUrl,
    workDir: options.workDir,
    indexPrefix: options.indexPrefix,
    intervalSec,
    factor,
    cycles: options.cycles ?? 2,
    splayPct: options.splayPct,
    firstDelaySec: options.firstDelaySec,
    startSpreadSec: options.startSpreadSec,
    changeRate: options.changeRate ?? 0.02,
    mode: options.mode ?? 'snapshot',
    exporter: plainExporter,
    forwardLog: Boolean(log),
    sampleEveryMs,
  };

  // The operator installs the templates and indices before the fleet reports: otherwise every agent's first
  // run PUTs the same templates and creates the same indices at once, a storm of cluster state updates that
  // stalls the first runs for many seconds (measured: 150 agents, 10 s).
  await installIndices({ ...shared, exporter: options.exporter });

  const latest = [];
  const slices = [];
  // Cleared however the simulation ends (a slice that died must not leave faults or samples to come).
  const timers = [];
  for (let k = 0, first = 0; k < processes; k++) {
    const count = Math.floor(agents / processes) + (k < agents % processes ? 1 : 0);
    const onReport = (message) => {
      latest[k] = message.counters;
      for (const error of message.errors) options.onError?.(new Error(error));
      for (const [line, level] of message.logs) log?.(line, level);
    };
    slices.push({ first, agents: count, ...startSlice({ ...shared, first, agents: count }, onReport) });
    first += count;
  }
  try {
    await Promise.all(slices.map((slice) => slice.ready));
    // One simulated time for every process: the same real start, a moment ahead for the message to arrive.
    const startAtMs = Date.now() + 200;
    for (const slice of slices) slice.start(startAtMs);
    const clock = compressedClock(factor, startAtMs);
    await new Promise((resolveStart) => setTimeout(resolveStart, Math.max(0, startAtMs - Date.now())));
    const cpuStarted = process.cpuUsage();

    const pendingFaults = [...(options.at ?? [])].map(
      (fault) =>
        new Promise((resolveFault) =>
          timers.push(clock.setTimeout(() => Promise.resolve(fault.action()).then(resolveFault, resolveFault), fault.simSec * 1000)),
        ),
    );
    let spoolPeakBytes = 0;
    let maxInFlightRuns = 0;
    let sampling = false;
    const sampler = setInterval(async () => {
      if (sampling) return; // a walk of thousands of spools can take longer than the period
      sampling = true;
      const bytes = await spoolBytes(options.workDir);
      sampling = false;
      const live = sumOf(latest);
      spoolPeakBytes = Math.max(spoolPeakBytes, bytes);
      maxInFlightRuns = Math.max(maxInFlightRuns, live.inFlightRuns);
      options.onSample?.({ simSec: (clock.now() - startAtMs) / 1000, spoolBytes: bytes, ...live, spoolPeakBytes, maxInFlightRuns });
    }, sampleEveryMs);
    timers.push(sampler);

    const finals = await Promise.all(slices.map((slice) => slice.result));
    await Promise.all(pendingFaults);
    clearInterval(sampler);
    spoolPeakBytes = Math.max(spoolPeakBytes, await spoolBytes(options.workDir));
    const realSeconds = (Date.now() - startAtMs) / 1000;
    const cpu = process.cpuUsage(cpuStarted);

    const results = finals.map((final) => final.result);
    const totals = sumOf(results);
    const sortedDurations = results.flatMap((r) => r.runDurationsMs).sort((a, b) => a - b);
    const rssMb = [...results.map((r) => r.peakRssMb), process.resourceUsage().maxRSS / 1024];
    return {
      ...totals,
      produced: totals.produced + 1, // the setup document
      spoolPeakBytes,
      // Sampled (the sum of the slices' runs in flight at each sample), at least one slice's own peak.
      maxInFlightRuns: Math.max(maxInFlightRuns, ...results.map((r) => r.maxInFlightRuns)),
      factor,
      realSeconds,
      runDurationP50SimSec: percentile(sortedDurations, 50) / 1000,
      runDurationP99SimSec: percentile(sortedDurations, 99) / 1000,
      processes,
      // Every process of the simulation: the slices, and this one (faults, spool samples, sums).
      simulatorCpuSeconds: results.reduce((n, r) => n + r.cpuSeconds, 0) + (cpu.user + cpu.system) / 1e6,
      simulatorPeakRssMb: rssMb.reduce((n, mb) => n + mb, 0),
      simulatorMaxProcessRssMb: Math.max(...rssMb),
      peakOpenFiles: Math.max(...finals.map((final) => final.peakOpenFiles)),
      slices: slices.map((slice, k) => ({
        first: slice.first,
        agents: slice.agents,
        pid: slice.pid,
        ...sumOf([results[k]]),
        cpuSeconds: results[k].cpuSeconds,
        peakRssMb: results[k].peakRssMb,
        peakOpenFiles: finals[k].peakOpenFiles,
      })),
      indices: {
        resultsIndex: `${options.indexPrefix}-results`,
        errorsIndex: `${options.indexPrefix}-errors`,
        runsIndex: `${options.indexPrefix}-runs`,
      },
    };
  } finally {
    for (const timer of timers) clearTimeout(timer);
    for (const slice of slices) slice.stop();
  }
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
