// The three faults at full size, for tools/bench/fleet/run.mjs (FAULT=kill-node|outage|slow). Each
// fault is a plan: options for simulateFleet (when to inject what, in simulated seconds), and a report read
// from the samples the simulation took and the proxy's per-second timeline. The verdict is the same for all
// three and comes from run.mjs: every document the agents produced is in Elasticsearch exactly once.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from './simulate.mjs';

export const FAULTS = ['kill-node', 'outage', 'slow'];

function services(servicesEnv, ...args) {
  return new Promise((resolve, reject) => {
    execFile('bash', [join(ROOT, 'tools/services'), ...args], { env: servicesEnv, timeout: 600_000 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`tools/services ${args.join(' ')} failed: ${error.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

/** Sums and peaks of the proxy's timeline entries within [fromMs, toMs) of real time. */
function windowOf(timeline, fromMs, toMs) {
  const entries = timeline.filter((e) => e.at + 1000 > fromMs && e.at < toMs);
  const seconds = Math.max(1, (toMs - fromMs) / 1000);
  const bulk = entries.reduce((n, e) => n + e.bulk, 0);
  return {
    bulk,
    bulkPerSecondMean: bulk / seconds,
    bulkPerSecondPeak: Math.max(0, ...entries.map((e) => e.bulk)),
    maxBulkInFlight: Math.max(0, ...entries.map((e) => e.maxBulkInFlight)),
    es429: entries.reduce((n, e) => n + e.es429, 0),
    refused: entries.reduce((n, e) => n + e.refused, 0),
  };
}

/** The agents' spool in MB at each simulated minute from `fromMs` (real), space-separated. */
function spoolSeries(samples, fromMs, factor) {
  const out = [];
  for (let minute = 0; ; minute++) {
    const at = fromMs + ((minute * 60) / factor) * 1000;
    const sample = samples.find((s) => s.at >= at);
    if (!sample) break;
    out.push((sample.spoolBytes / 1048576).toFixed(1));
  }
  return out.join(' ');
}

/**
 * The plan of one fault. ctx: { env, intervalSec, servicesEnv (to kill/start nodes), nodes, proxy }.
 * Returns { cycles, simOptions: { at }, setup(), teardown(), report({ samples, proxyStats, result }) }.
 * Fault times are simulated seconds after the start: the agents' daemons start spread over the first
 * interval, so a fault at one interval hits a fleet in its steady state.
 */
export function faultPlan(name, ctx) {
  const env = ctx.env;
  const interval = ctx.intervalSec;
  const events = {};
  const mark = (key) => (events[key] = Date.now());

  if (name === 'kill-node') {
    if (ctx.nodes < 3 || !ctx.servicesEnv) {
      throw new Error(
        'FAULT=kill-node needs a cluster of 3 or more nodes from tools/services: set GATHER_ES_NODES=3 (the benchmark starts one), or GATHER_SERVICES_DIR and GATHER_ES_NODES of a running one',
      );
    }
    const node = env.KILL_NODE ?? '2';
    const killAt = Number(env.KILL_AT_SIM_SEC ?? interval);
    const restartAt = Number(env.RESTART_AT_SIM_SEC ?? interval + 600);
    return {
      cycles: 2,
      simOptions: {
        at: [
          { simSec: killAt, action: async () => (mark('killed'), await services(ctx.servicesEnv, 'kill-node', node)) },
          {
            simSec: restartAt,
            action: async () => (mark('restarting'), await services(ctx.servicesEnv, 'start-node', node), mark('rejoined')),
          },
        ],
      },
      setup: async () => undefined,
      teardown: async () => undefined,
      report: async () => {
        const status = await services(ctx.servicesEnv, 'status', 'elasticsearch').catch((error) => String(error.message));
        return {
          fault: `kill -9 node ${node} of ${ctx.nodes} at simulated ${killAt} s, start-node at ${restartAt} s`,
          node_killed: events.killed ? 'yes' : 'no',
          node_rejoin_s: events.rejoined ? ((events.rejoined - events.restarting) / 1000).toFixed(1) : 'never',
          cluster_after: /^cluster: (.*)$/m.exec(status)?.[1] ?? status.trim().split('\n').pop(),
        };
      },
    };
  }

  if (name === 'outage') {
    const downAt = Number(env.DOWN_AT_SIM_SEC ?? interval);
    const downFor = Number(env.OUTAGE_SIM_SEC ?? 600);
    return {
      // Two intervals after the cluster is back: time for every agent's next run (which delivers its spool).
      cycles: Math.ceil((downAt + downFor) / interval) + 1,
      simOptions: {
        at: [
          { simSec: downAt, action: async () => (mark('down'), await ctx.proxy.configure({ down: true })) },
          { simSec: downAt + downFor, action: async () => (await ctx.proxy.configure({ down: false }), mark('up')) },
        ],
      },
      setup: async () => undefined,
      teardown: () => ctx.proxy.configure({ down: false }),
      report: async ({ samples, proxyStats, result, drainedAt }) => {
        const factor = result.factor;
        const up = events.up ?? Number.POSITIVE_INFINITY;
        const peakAt = samples
          .filter((s) => s.at >= (events.down ?? 0))
          .reduce((best, s) => (s.spoolBytes > (best?.spoolBytes ?? -1) ? s : best), undefined);
        const empty = samples.find((s) => s.at > up && s.spoolBytes === 0);
        const atUp = samples.find((s) => s.at >= up);
        // Spools still full when the simulation ended were emptied by drainSpools (each agent's next run).
        const drainEnd = empty?.at ?? drainedAt;
        const before = windowOf(proxyStats.timeline, events.down - (interval / factor) * 1000, events.down);
        const during = windowOf(proxyStats.timeline, up, drainEnd);
        const retriesInDrain = (empty ?? samples.at(-1))?.retried - (atUp?.retried ?? 0);
        return {
          fault: `cluster unreachable (every connection reset) from simulated ${downAt} s for ${downFor} s`,
          connections_refused_while_down: proxyStats.refused ?? 0,
          runs_spooled: result.runsSpooled,
          spool_peak_after_down_mb: ((peakAt?.spoolBytes ?? 0) / 1048576).toFixed(2),
          spool_at_cluster_back_mb: ((atUp?.spoolBytes ?? 0) / 1048576).toFixed(2),
          spools_empty_again: empty ? 'yes' : 'no (drained after the run)',
          // The stampede check: the recovery's request rate and concurrency against the interval before it.
          steady_bulk_per_s_mean: before.bulkPerSecondMean.toFixed(1),
          steady_bulk_per_s_peak: before.bulkPerSecondPeak,
          steady_max_bulk_in_flight: before.maxBulkInFlight,
          drain_bulk_per_s_mean: during.bulkPerSecondMean.toFixed(1),
          drain_bulk_per_s_peak: during.bulkPerSecondPeak,
          drain_max_bulk_in_flight: during.maxBulkInFlight,
          drain_es_429: during.es429,
          drain_retries: Number.isFinite(retriesInDrain) ? retriesInDrain : 0,
          drain_time_real_s: ((drainEnd - Math.min(up, drainEnd)) / 1000).toFixed(1),
          drain_time_sim_s: Math.round(((drainEnd - Math.min(up, drainEnd)) / 1000) * factor),
          spool_mb_per_sim_min_from_down: spoolSeries(samples, events.down, factor),
        };
      },
    };
  }

  if (name === 'slow') {
    const delayMs = Number(env.SLOW_BULK_MS ?? 2000);
    return {
      cycles: 2,
      simOptions: {},
      setup: () => ctx.proxy.configure({ bulkDelayMs: delayMs }),
      teardown: () => ctx.proxy.configure({ bulkDelayMs: 0 }),
      report: async ({ result }) => ({
        fault: `every bulk response delayed ${delayMs} ms (real time: ${Math.round((delayMs * result.factor) / 1000)} simulated s)`,
        runs_within_interval: result.runs - result.longRuns,
        runs_over_interval: result.longRuns,
        overruns_reported: result.overruns,
        overruns_match: result.overruns === result.longRuns ? 'yes' : 'no',
        runs_skipped_while_running: result.skipped,
      }),
    };
  }
  throw new Error(`FAULT must be one of ${FAULTS.join(', ')}, not ${name}`);
}
