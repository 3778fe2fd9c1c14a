// The simulated agents of one slice of the fleet, in this process: each with its own host identity, state
// dir and spool, running the real code path from parsed check output onward — core's output parser
// (classifyOutcome), the document shape of core's run(), the real Elasticsearch exporter with its on-disk
// spool and retries, and a run summary per run — on the daemon's real Scheduler (grid + splay + first
// delay), with time compressed (a 15-minute interval in, say, 60 s). The check output is a recording of a
// real run of checks/ on this machine (tools/bench/fixtures/checks-run.json), varied per host and per run
// (see `vary`). simulate.mjs splits a fleet into slices, each in a process of its own (slice-process.mjs).
// Imports the built packages (run `pnpm build` first).
import { createHash, randomUUID } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

async function importBuilt(path) {
  const file = join(ROOT, path);
  if (!existsSync(file)) throw new Error(`fleet simulation: ${path} is missing; build first: pnpm build`);
  return import(pathToFileURL(file).href);
}

const { classifyOutcome } = await importBuilt('packages/core/dist/index.js');
export const { createEsExporter } = await importBuilt('packages/exporter-es/dist/index.js');
const { Scheduler } = await importBuilt('packages/agent/dist/scheduler.js');
const { DifferentialResults } = await importBuilt('packages/agent/dist/differential.js');

export const BUNDLE = { version: 'fleet-sim', sha256: createHash('sha256').update('fleet-sim').digest('hex') };

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

/**
 * A clock for the Scheduler whose time runs `factor` times faster than real time from `realStart` (ms since
 * epoch), when it reads `start`. Processes given the same two values share one simulated time.
 */
export function compressedClock(factor, start = Date.now(), realStart = start) {
  return {
    now: () => start + (Date.now() - realStart) * factor,
    setTimeout: (callback, ms) => setTimeout(callback, Math.max(0, ms / factor)),
    clearTimeout: (handle) => clearTimeout(handle),
  };
}

/**
 * The options of every simulated agent's exporter but its spoolDir. The exporter's waits (retry backoff, the
 * pause after an outage) are compressed like the schedule, so a simulated outage of 10 minutes is as long,
 * against them, as a real one; `exporter` (the caller's extra options) comes last.
 */
export function exporterOptions({ esUrl, indexPrefix, factor, exporter }) {
  const compressed = (ms) => Math.max(1, Math.round(ms / factor));
  return {
    node: esUrl,
    resultsIndex: `${indexPrefix}-results`,
    errorsIndex: `${indexPrefix}-errors`,
    runsIndex: `${indexPrefix}-runs`,
    currentState: true,
    latestIndex: `${indexPrefix}-latest`,
    hostsIndex: `${indexPrefix}-hosts`,
    retryBaseDelayMs: compressed(200),
    retryMaxDelayMs: compressed(5000),
    probeIntervalMs: compressed(30_000),
    ...exporter,
  };
}

/** File descriptors this process holds now (Linux; 0 elsewhere): what ran out when one process simulated 10,000. */
export function openFiles() {
  try {
    return readdirSync('/proc/self/fd').length;
  } catch {
    return 0;
  }
}

/**
 * Agents `first` .. `first + agents - 1` of the fleet (their host names and dirs are the fleet's, so slices
 * in different processes never share one). Options as simulateFleet's (simulate.mjs), all plain values, plus
 * `factor`; hooks: onError(error) for a run that failed, log(line, level) for the exporters' log lines.
 * Makes every agent's dir and Scheduler, and returns the live `counters` and `run(startAtMs)`: the
 * simulation, from simulated time `startAtMs` at real time `startAtMs`, until the last interval ended and
 * every run in flight finished. Documents produced are every result, error and run summary the agents
 * handed to their Elasticsearch exporters (after the differential filter, in differential mode).
 */
export async function prepareAgents(options, hooks = {}) {
  const { first, agents, intervalSec, factor, cycles, changeRate, mode } = options;
  const spec = { everySec: intervalSec, splayPct: options.splayPct ?? 10, firstDelaySec: options.firstDelaySec ?? 30 };
  const fixtures = loadFixtures('abuse');
  const shared = exporterOptions({ ...options, exporter: { ...options.exporter, ...(hooks.log ? { log: hooks.log } : {}) } });
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
    inFlightRuns: 0,
    maxInFlightRuns: 0,
  };
  const runDurationsMs = [];
  // Every slice must be ready before the start time is known: the Schedulers read the clock `run` sets.
  let clock;
  const deferredClock = {
    now: () => clock.now(),
    setTimeout: (callback, ms) => clock.setTimeout(callback, ms),
    clearTimeout: (handle) => clock.clearTimeout(handle),
  };

  async function runAgent(i, slot, dueAt) {
    const host = { hostname: `sim-${String(i).padStart(5, '0')}`, id: `sim-machine-id-${i}` };
    const cloud = { instance: { id: `i-${(0x10000000 + i).toString(16)}` } };
    const agentDir = join(options.workDir, `agent-${i}`);
    const runId = randomUUID();
    const started = clock.now();
    counters.runs++;
    counters.inFlightRuns++;
    counters.maxInFlightRuns = Math.max(counters.maxInFlightRuns, counters.inFlightRuns);
    const es = createEsExporter({ ...shared, spoolDir: join(agentDir, 'spool') });
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
          bundle: BUNDLE,
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
        bundle: BUNDLE,
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
      runDurationsMs.push(durationMs);
      if (durationMs > intervalSec * 1000) counters.longRuns++;
      counters.inFlightRuns--;
    }
  }

  const schedulers = [];
  for (let i = first; i < first + agents; i++) {
    await mkdir(join(options.workDir, `agent-${i}`), { recursive: true, mode: 0o700 });
    schedulers.push(
      new Scheduler({
        clock: deferredClock,
        jobs: [{ name: 'abuse', spec, run: ({ slot, dueAt }) => runAgent(i, slot, dueAt) }],
        onOverrun: () => counters.overruns++,
        onSkip: () => counters.skipped++,
        onError: (_job, error) => {
          counters.runErrors++;
          hooks.onError?.(error);
        },
      }),
    );
  }

  async function run(startAtMs) {
    clock = compressedClock(factor, startAtMs);
    await new Promise((resolveStart) => setTimeout(resolveStart, Math.max(0, startAtMs - Date.now())));
    const cpuStarted = process.cpuUsage();
    const startSpreadSec = options.startSpreadSec ?? intervalSec;
    const endSim = startAtMs + (startSpreadSec + spec.firstDelaySec + cycles * intervalSec) * 1000;
    // Each daemon starts at a uniformly random time within the spread (0: all restarted at the same moment).
    const starts = schedulers.map((scheduler) => clock.setTimeout(() => scheduler.start(), Math.random() * startSpreadSec * 1000));
    await new Promise((resolveEnd) => setTimeout(resolveEnd, (endSim - clock.now()) / factor));
    for (const start of starts) clock.clearTimeout(start);
    for (const scheduler of schedulers) scheduler.stop();
    await Promise.all(schedulers.flatMap((s) => s.running()));
    const cpu = process.cpuUsage(cpuStarted);
    return {
      ...counters,
      runDurationsMs,
      cpuSeconds: (cpu.user + cpu.system) / 1e6,
      peakRssMb: process.resourceUsage().maxRSS / 1024,
    };
  }

  return { counters, run };
}
