// One slice of the fleet in a process of its own, started by simulateFleet (simulate.mjs) over IPC: every
// simulated agent holds descriptors while its run is queued (its spool segment and lock, its sockets), and
// one process of 10,000 agents ran out of them. Messages from the parent: { type: 'prepare', options }, then
// { type: 'start', startAtMs }. To the parent: 'ready' once every agent's dir and Scheduler exist, a 'sample'
// every `sampleEveryMs` (live counters, open files, and the run errors and exporter log lines since the
// last one), and the 'result' at the end, after which this process exits.
import { openFiles, prepareAgents } from './agents.mjs';

if (!process.send) {
  console.error('slice-process.mjs is started by tools/bench/fleet/simulate.mjs (with an IPC channel)');
  process.exit(2);
}

let errors = [];
let logs = [];
let peakOpenFiles = 0;
let slice;
let sampleEveryMs = 1000;

function report(type, extra = {}) {
  peakOpenFiles = Math.max(peakOpenFiles, openFiles());
  const message = { type, counters: { ...slice.counters }, peakOpenFiles, errors, logs, ...extra };
  errors = [];
  logs = [];
  return new Promise((resolveSent) => process.send(message, resolveSent));
}

process.on('message', async (message) => {
  if (message.type === 'prepare') {
    const { options } = message;
    sampleEveryMs = options.sampleEveryMs ?? sampleEveryMs;
    slice = await prepareAgents(options, {
      onError: (error) => errors.push(String(error?.message ?? error)),
      ...(options.forwardLog ? { log: (line, level) => logs.push([line, level]) } : {}),
    });
    process.send({ type: 'ready' });
    return;
  }
  if (message.type === 'start') {
    const sampler = setInterval(() => report('sample'), sampleEveryMs);
    const result = await slice.run(message.startAtMs);
    clearInterval(sampler);
    await report('result', { result });
    process.exit(0);
  }
});
