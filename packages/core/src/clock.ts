/**
 * Milliseconds on a monotonic clock, for measuring how long something took. `process.hrtime` rather than
 * `performance.now()`: the `performance` global loads nine of Node's modules on first use, compiled from
 * source once the agent has turned V8's optimizing compilers off (its code cache no longer matches), a cost
 * every run would pay for a subtraction (tools/bench/startup).
 */
export function monotonicMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}
