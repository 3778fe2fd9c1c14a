import { setFlagsFromString } from 'node:v8';

/**
 * Turns V8's optimizing compilers (Maglev, TurboFan) off for the rest of the process: a run is short and
 * I/O-bound, and their compile jobs on V8's worker threads cost ~10 MB of peak RSS for no measurable time
 * (a run with the S3 fetcher peaks at 84-86 MB with them, under 80 without; tools/bench/rss).
 *
 * Why here and not `--max-opt=1` on the bin's command line: there it changes V8's flag hash (the bin's
 * `--max-semi-space-size` does not), which is part of every code cache, so V8 would reject the code
 * Node ships cached for its own modules and compile each of them again (~30 ms CPU of a 1-check run;
 * `NODE_DEBUG_NATIVE=CODE_CACHE` shows them rejected). Called once the CLI's modules, with every built-in
 * they import, are loaded, it costs only the few built-ins loaded later (tools/bench/startup).
 */
export function compileWithBaselineOnly(): void {
  setFlagsFromString('--no-maglev');
  setFlagsFromString('--no-turbofan');
}
