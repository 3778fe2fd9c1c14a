/**
 * Turns V8's optimizing compilers (Maglev, TurboFan) off for the rest of the process, once an adapter is
 * about to be loaded (adapters.ts): the AWS SDK and the exporter's code are large, and their compile jobs on
 * V8's worker threads cost ~10 MB of peak RSS in a short, I/O-bound run (a run with the S3 fetcher peaks at
 * 84-86 MB with them, under 80 without; tools/bench/rss), for no measurable time.
 *
 * Not on every run: a run that reads a local bundle and writes NDJSON peaks at the same ~59 MB either way,
 * and the switch is not free: loading node:v8 (which loads worker_threads and the profilers) and changing
 * V8's flag hash cost ~10 ms of a 1-check run (tools/bench/startup).
 *
 * Why at run time and not `--max-opt=1` on the bin's command line: there it changes V8's flag hash (the bin's
 * semi-space sizes do not), which is part of every code cache, so V8 would reject the code Node ships cached
 * for its own modules and compile each of them again (~30 ms CPU of a 1-check run;
 * `NODE_DEBUG_NATIVE=CODE_CACHE` shows them rejected). At run time it costs only the built-ins loaded later.
 */
let done = false;

export function compileWithBaselineOnly(): void {
  if (done) return;
  done = true;
  // Loaded here, not imported at the top: a bundled static import would load node:v8 on every start.
  const v8 = process.getBuiltinModule?.('node:v8');
  v8?.setFlagsFromString('--no-maglev');
  v8?.setFlagsFromString('--no-turbofan');
}
