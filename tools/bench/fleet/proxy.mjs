#!/usr/bin/env node
// A loopback HTTP proxy in front of Elasticsearch for the fleet simulation, in its own process so its CPU
// is measured apart from the agents'. It forwards every request to the upstream nodes round-robin (the
// next node when one refuses the connection, like a load balancer; 502 when none answers), measures the
// latency of each `_bulk` request, counts response statuses, tracks requests in flight, and can be told to
// add a delay to every bulk response (a slow cluster), to answer a share of bulk requests 429, or to be
// down (every connection reset at once, as a cluster that is gone).
//
//   node proxy.mjs --upstream http://127.0.0.1:9201,http://127.0.0.1:9202
//   prints "PROXY_READY http://127.0.0.1:PORT" on stdout; control: GET /__proxy/stats, POST /__proxy/config
//   ({"bulkDelayMs": 2000, "reject429": 0.5, "down": true}), POST /__proxy/reset (clears the counters).
// The stats carry a timeline: per real second, the bulk requests that arrived, the most bulk requests in
// flight at once, the 429s Elasticsearch itself answered and the connections refused while down (what the
// fault benchmarks read to show a recovery is not a stampede).
import { Agent, createServer, request as httpRequest } from 'node:http';

const args = process.argv.slice(2);
const upstreamArg = args[args.indexOf('--upstream') + 1];
if (!args.includes('--upstream') || !upstreamArg) {
  console.error('usage: proxy.mjs --upstream URL[,URL...]');
  process.exit(2);
}
const upstreams = upstreamArg.split(',').map((u) => new URL(u));
const config = { bulkDelayMs: 0, reject429: 0, down: false };
// Few long-lived connections to the nodes, as a load balancer keeps: thousands of agents' connections are
// multiplexed onto them (and a burst of new connections does not meet resets).
const upstreamAgent = new Agent({ keepAlive: true, maxSockets: 32 });
let stats;
let next = 0;
let inFlight = 0;
let bulkInFlight = 0;

function resetStats() {
  stats = {
    requests: 0,
    bulk: 0,
    statuses: {},
    bulkLatencyMs: [],
    maxInFlight: 0,
    maxBulkInFlight: 0,
    upstreamErrors: 0,
    injected429: 0,
    firstBulkAt: 0,
    lastBulkAt: 0,
    timeline: new Map(),
  };
}

/** The timeline bucket of this real second: { at (ms), bulk, maxBulkInFlight, es429, refused }. */
function bucket() {
  const at = Math.floor(Date.now() / 1000) * 1000;
  let entry = stats.timeline.get(at);
  if (!entry) stats.timeline.set(at, (entry = { at, bulk: 0, maxBulkInFlight: bulkInFlight, es429: 0, refused: 0 }));
  return entry;
}
resetStats();

function percentile(sorted, p) {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function summary() {
  const sorted = [...stats.bulkLatencyMs].sort((a, b) => a - b);
  const { bulkLatencyMs, timeline, ...rest } = stats;
  return {
    ...rest,
    timeline: [...timeline.values()],
    inFlight,
    bulkInFlight,
    bulkLatencyP50Ms: percentile(sorted, 50),
    bulkLatencyP99Ms: percentile(sorted, 99),
    config,
  };
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function forward(req, body, attempt) {
  return new Promise((resolve, reject) => {
    const target = upstreams[(next + attempt) % upstreams.length];
    const upstream = httpRequest(
      {
        host: target.hostname,
        port: target.port,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, host: target.host },
        // HEAD answers over a reused connection met resets from the node under load: one connection each.
        agent: req.method === 'HEAD' ? false : upstreamAgent,
      },
      (res) => {
        readBody(res).then((data) => resolve({ status: res.statusCode ?? 502, headers: res.headers, data }), reject);
      },
    );
    upstream.on('error', reject);
    upstream.end(body);
  });
}

const server = createServer(async (req, res) => {
  if (req.url?.startsWith('/__proxy/')) {
    if (req.url === '/__proxy/stats') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(summary()));
    } else if (req.url === '/__proxy/config' && req.method === 'POST') {
      Object.assign(config, JSON.parse((await readBody(req)).toString() || '{}'));
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(config));
    } else if (req.url === '/__proxy/reset' && req.method === 'POST') {
      resetStats();
      res.writeHead(200).end('{}');
    } else res.writeHead(404).end();
    return;
  }
  if (config.down) {
    stats.refused = (stats.refused ?? 0) + 1;
    bucket().refused++;
    req.socket.destroy();
    return;
  }
  const started = performance.now();
  const isBulk = /\/_bulk(\?|$)/.test(req.url ?? '');
  stats.requests++;
  inFlight++;
  stats.maxInFlight = Math.max(stats.maxInFlight, inFlight);
  if (isBulk) {
    bulkInFlight++;
    stats.maxBulkInFlight = Math.max(stats.maxBulkInFlight, bulkInFlight);
    const entry = bucket();
    entry.bulk++;
    entry.maxBulkInFlight = Math.max(entry.maxBulkInFlight, bulkInFlight);
  }
  let status = 502;
  try {
    const body = await readBody(req);
    if (isBulk && config.reject429 > 0 && Math.random() < config.reject429) {
      stats.injected429++;
      status = 429;
      res.writeHead(429, { 'content-type': 'application/json', 'x-elastic-product': 'Elasticsearch' });
      res.end(JSON.stringify({ error: { type: 'es_rejected_execution_exception', reason: 'injected by the fleet proxy' }, status: 429 }));
      return;
    }
    next = (next + 1) % upstreams.length;
    let answer;
    for (let attempt = 0; attempt < 2 * upstreams.length && !answer; attempt++) {
      answer = await forward(req, body, attempt).catch((error) => {
        stats.upstreamErrors++;
        stats.lastUpstreamError = `${String(error?.code ?? error?.message ?? error)} on ${req.method} ${req.url?.slice(0, 80)}`;
        return undefined;
      });
    }
    if (isBulk && config.bulkDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, config.bulkDelayMs));
    if (!answer) {
      res.writeHead(502, { 'content-type': 'text/plain' }).end('no upstream node answered');
      return;
    }
    status = answer.status;
    if (status === 429) bucket().es429++;
    const headers = { ...answer.headers };
    delete headers['transfer-encoding'];
    delete headers.connection;
    res.writeHead(answer.status, { ...headers, 'content-length': answer.data.length }).end(answer.data);
  } catch {
    res.writeHead(502).end();
  } finally {
    inFlight--;
    stats.statuses[status] = (stats.statuses[status] ?? 0) + 1;
    if (isBulk) {
      bulkInFlight--;
      stats.bulk++;
      stats.bulkLatencyMs.push(performance.now() - started);
      const now = Date.now();
      stats.firstBulkAt ||= now;
      stats.lastBulkAt = now;
    }
  }
});
server.keepAliveTimeout = 30_000;
server.listen(0, '127.0.0.1', () => {
  console.log(`PROXY_READY http://127.0.0.1:${server.address().port}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
