// tools/bench/fleet: N simulated agents (default 10,000) against a real Elasticsearch (one node, or a cluster
// of GATHER_ES_NODES nodes started by tools/services), through the measuring proxy, in PROCESSES OS processes
// (default one per 2,500 agents). See simulate.mjs.
// Prints `name: value` lines, the headline last: how many VMs the cluster absorbs at a 15-minute cadence.
// FAULT=kill-node|outage|slow runs one of the faults at full size (faults.mjs) and ends with the
// exact-count verdict instead: every document the agents produced is in Elasticsearch exactly once.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FAULTS, faultPlan } from './faults.mjs';
import {
  ROOT,
  countStored,
  defaultProcesses,
  drainSpools,
  processUsage,
  removeIndices,
  removeWork,
  simulateFleet,
  startProxy,
  storeBytesPerDoc,
} from './simulate.mjs';

const env = process.env;
const AGENTS = Number(env.AGENTS ?? 10_000);
const PROCESSES = Number(env.PROCESSES ?? defaultProcesses(AGENTS));
const REAL_INTERVAL_SEC = Number(env.REAL_INTERVAL_SEC ?? 60);
const FAULT = env.FAULT ?? '';
const CHANGE_RATE = Number(env.CHANGE_RATE ?? 0.02);
const MODE = env.MODE ?? 'snapshot';
// A node can only be killed in a cluster: kill-node starts one of 3 unless told otherwise.
const NODES = Number(env.GATHER_ES_NODES ?? (FAULT === 'kill-node' ? 3 : 1));
if (MODE !== 'snapshot' && MODE !== 'differential') {
  console.error(`bench/fleet: MODE must be snapshot or differential, not ${MODE}`);
  process.exit(2);
}
if (!Number.isInteger(PROCESSES) || PROCESSES < 1) {
  console.error(`bench/fleet: PROCESSES must be a whole number of 1 or more, not ${env.PROCESSES}`);
  process.exit(2);
}
if (FAULT && !FAULTS.includes(FAULT)) {
  console.error(`bench/fleet: FAULT must be one of ${FAULTS.join(', ')}, not ${FAULT}`);
  process.exit(2);
}
if (FAULT === 'kill-node' && (NODES < 3 || ((env.GATHER_ES_URLS ?? env.GATHER_ES_URL) && !env.GATHER_SERVICES_DIR))) {
  console.error(
    'bench/fleet: FAULT=kill-node needs a cluster of 3 or more nodes from tools/services: leave GATHER_ES_URL(S) unset (a 3-node cluster is started), or set GATHER_ES_URLS, GATHER_SERVICES_DIR and GATHER_ES_NODES of a running one',
  );
  process.exit(2);
}

// Elasticsearch: GATHER_ES_URLS / GATHER_ES_URL, else tools/services (a cluster when GATHER_ES_NODES > 1,
// in its own state dir, deleted at the end).
let urls = (env.GATHER_ES_URLS ?? env.GATHER_ES_URL ?? '').split(',').filter(Boolean);
let servicesEnv;
let ownCluster = false;
if (urls.length > 0 && env.GATHER_SERVICES_DIR) servicesEnv = { ...env, GATHER_ES_NODES: String(NODES) }; // a running cluster's nodes
if (urls.length === 0) {
  ownCluster = true;
  servicesEnv = { ...env, GATHER_ES_NODES: String(NODES), GATHER_SERVICES_DIR: join(tmpdir(), `gather-fleet-services-${process.pid}`) };
  const out = execFileSync('bash', [join(ROOT, 'tools/services'), 'start', 'elasticsearch'], {
    env: servicesEnv,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  urls = (/^GATHER_ES_URLS=(.+)$/m.exec(out)?.[1] ?? /^GATHER_ES_URL=(.+)$/m.exec(out)?.[1] ?? '').trim().split(',').filter(Boolean);
  if (urls.length === 0) throw new Error(`tools/services start printed no URL:\n${out}`);
}

const work = await mkdtemp(join(tmpdir(), 'gather-fleet-'));
const indexPrefix = `gather-fleet-${Date.now().toString(36)}`;
const proxy = await startProxy(urls);
const fault = FAULT ? faultPlan(FAULT, { env, intervalSec: 900, servicesEnv, nodes: urls.length, proxy }) : undefined;
const CYCLES = Number(env.CYCLES ?? fault?.cycles ?? 2);
try {
  const samples = [];
  // What went wrong, by kind (numbers and paths masked): run errors and the exporters' log lines.
  const kinds = new Map();
  const tally = (prefix, text) => {
    const kind = `${prefix}: ${String(text)
      .replace(/\/[^\s)]+/g, '<path>')
      .replace(/\d+/g, 'N')
      .slice(0, 160)}`;
    kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
  };
  await fault?.setup();
  const result = await simulateFleet({
    esUrl: proxy.url,
    workDir: work,
    indexPrefix,
    agents: AGENTS,
    processes: PROCESSES,
    realIntervalSec: REAL_INTERVAL_SEC,
    cycles: CYCLES,
    changeRate: CHANGE_RATE,
    mode: MODE,
    onSample: (sample) => samples.push({ ...sample, at: Date.now() }),
    onError: (error) => tally('run error', error?.message ?? error),
    exporter: { log: (line) => tally('exporter', line) },
    ...fault?.simOptions,
  });
  await fault?.teardown();
  const proxyStats = await proxy.stats();
  const proxyUsage = await processUsage(proxy.pid);
  const drained = await drainSpools({ esUrl: proxy.url, workDir: work, indexPrefix });
  const faultLines = fault ? await fault.report({ samples, proxyStats, result, drainedAt: Date.now() }) : {};
  const stored = await countStored(urls[0], indexPrefix);
  const bytesPerDoc = await storeBytesPerDoc(urls[0], indexPrefix);

  // Documents a run sends on average (46 in snapshot mode; the changes, mostly, in differential mode).
  const docsPerRun = result.produced / Math.max(1, result.runs);
  const activeSeconds = Math.max(1, (proxyStats.lastBulkAt - proxyStats.firstBulkAt) / 1000);
  const docsPerSecond = (result.delivered + result.recovered) / activeSeconds;
  const offeredVms = AGENTS * result.factor;
  const keptUp = result.overruns === 0 && result.runsSpooled === 0 && result.runErrors === 0;
  // Kept up: the offered load is a lower bound of what the cluster absorbs. Otherwise: what it delivered.
  const absorbedVms = keptUp ? offeredVms : Math.round((docsPerSecond * 900) / docsPerRun);
  const lines = {
    nodes: urls.length,
    agents: AGENTS,
    mode: MODE,
    time_compression: result.factor,
    real_seconds: result.realSeconds.toFixed(1),
    change_rate: CHANGE_RATE,
    docs_per_run: docsPerRun.toFixed(1),
    runs: result.runs,
    docs_produced: result.produced,
    docs_stored: stored,
    docs_lost: result.produced - stored,
    docs_delivered: result.delivered,
    docs_recovered_from_spools: result.recovered,
    docs_drained_after: drained.recovered,
    spool_bytes_left: drained.spoolBytesLeft,
    store_bytes_per_doc: Math.round(bytesPerDoc),
    sustained_docs_per_s: Math.round(docsPerSecond),
    bulk_requests: proxyStats.bulk,
    bulk_latency_p50_ms: proxyStats.bulkLatencyP50Ms.toFixed(1),
    bulk_latency_p99_ms: proxyStats.bulkLatencyP99Ms.toFixed(1),
    rejections_429: proxyStats.statuses['429'] ?? 0,
    retries: result.retried,
    failed: result.failed,
    dead_lettered: result.deadLettered,
    dropped: result.dropped,
    run_errors: result.runErrors,
    http_statuses: JSON.stringify(proxyStats.statuses),
    max_requests_in_flight: proxyStats.maxInFlight,
    runs_spooled: result.runsSpooled,
    spool_peak_mb: (result.spoolPeakBytes / 1048576).toFixed(2),
    spool_left_agents: drained.agents,
    overruns: result.overruns,
    run_duration_p50_sim_s: result.runDurationP50SimSec.toFixed(1),
    run_duration_p99_sim_s: result.runDurationP99SimSec.toFixed(1),
    // Every simulating process: the slices and the one that runs them (CPU and peak RSS summed).
    simulator_processes: result.processes,
    simulator_cpu_s: result.simulatorCpuSeconds.toFixed(1),
    simulator_peak_rss_mb: result.simulatorPeakRssMb.toFixed(0),
    simulator_max_process_rss_mb: result.simulatorMaxProcessRssMb.toFixed(0),
    simulator_peak_open_files_per_process: result.peakOpenFiles,
    proxy_cpu_s: proxyUsage.cpuSeconds.toFixed(1),
    proxy_peak_rss_mb: proxyUsage.peakRssMb.toFixed(0),
    kept_up: keptUp,
    offered_vms_at_15min: Math.round(offeredVms),
    [`vms_absorbed_at_15min_${urls.length}_node${urls.length > 1 ? 's' : ''}_${MODE}`]: absorbedVms,
    ...faultLines,
    problems: JSON.stringify(Object.fromEntries([...kinds].sort((a, b) => b[1] - a[1]).slice(0, 8))),
  };
  // The fault's headline: exactly once, counted by deterministic id (written with `create`, so a document
  // delivered twice is one document: stored == produced means none lost and none doubled).
  if (fault)
    lines[`exactly_once_after_${FAULT.replace('-', '_')}`] =
      stored === result.produced ? `yes (${stored} of ${result.produced})` : `NO (${stored} stored of ${result.produced} produced)`;
  for (const [name, value] of Object.entries(lines)) console.log(`${name}: ${value}`);
  if (stored !== result.produced) process.exitCode = 1;
} finally {
  await proxy.stop();
  await removeIndices(urls[0], indexPrefix).catch(() => undefined);
  await removeWork(work);
  if (ownCluster) spawnSync('bash', [join(ROOT, 'tools/services'), 'clean', 'elasticsearch'], { env: servicesEnv, stdio: 'inherit' });
}
