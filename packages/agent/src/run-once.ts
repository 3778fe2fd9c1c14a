/**
 * One run, as `gather-agent run` and each scheduled run of the daemon do it: build the fetcher and the
 * exporter from the configuration, call core's run(), then export a run summary document and close.
 */
import {
  AbortedError,
  BundleRefusedError,
  ConfigError,
  FetchError,
  createSequenceStateFile,
  createScrubber,
  redactText,
  run,
  scrubbingExporter,
  type Category,
  type CheckDoneEvent,
  type ExportSummary,
  type ExportTotals,
  type Exporter,
  type Fetcher,
  type FetchResult,
  type RunSummary,
  type RunSummaryDocument,
} from '@gather/core';
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import { bundleSourceKey, createExporter, createFetcher, type AdapterOptions } from './adapters.js';
import type { AgentConfig } from './config.js';
import { exitCodeOf, outcomeOf, type RunFacts } from './exit-codes.js';
import { DifferentialResults, readHostHistory, saveHostHistory } from './differential.js';
import { hostIdentity } from './host-id.js';
import { errorText, type Logger } from './logger.js';
import { AGENT_VERSION } from './version.js';

/** How long the export may go on after a stop before what is not acknowledged is spooled. */
export const EXPORT_AFTER_STOP_MS = 5000;

export interface RunOnceOptions {
  config: AgentConfig;
  category: Category | 'all';
  logger: Logger;
  trigger: 'once' | 'schedule';
  /**
   * Aborting it stops the run at any moment: running checks are killed, what was collected is exported (or,
   * after EXPORT_AFTER_STOP_MS, spooled), and the outcome is `interrupted`.
   */
  signal?: AbortSignal;
  /** Let core stop on SIGINT/SIGTERM itself (`gather-agent run`); the daemon handles signals. */
  handleProcessSignals: boolean;
  /** Append to the NDJSON file (the daemon) rather than truncate it. */
  append: boolean;
  onCheckDone?: (event: CheckDoneEvent) => void;
  /** Daemon: the run ended more than this many ms after it was due (`dueAt`): reported as an overrun. */
  overrunAfterMs?: number;
  dueAt?: number;
  importer?: AdapterOptions['importer'];
}

export interface RunOnceResult {
  summary: RunSummary | undefined;
  document: RunSummaryDocument;
  /** Why the run did not complete, if it did not. */
  error: unknown;
  /** Also set when the run completed but the run summary or the final flush could not be exported. */
  exportError: string | undefined;
  exitCode: number;
}

/** The exporter's totals as the run summary document carries them. */
export function exportTotals(s: ExportSummary): ExportTotals {
  return {
    delivered: s.delivered,
    spooled: s.spooled,
    failed: s.failed,
    retried: s.retried ?? 0,
    dead_lettered: s.deadLettered ?? 0,
    dropped: s.dropped ?? 0,
    unreadable: s.unreadable ?? 0,
    recovered: s.recovered ?? 0,
  };
}

export async function runOnce(options: RunOnceOptions): Promise<RunOnceResult> {
  const { config, logger } = options;
  const started = Date.now();
  const runId = randomUUID();
  // After a stop, the export may go on this long (a healthy Elasticsearch takes the rest); then requests in
  // flight are aborted and what was not acknowledged is spooled, so a hung cluster cannot hold the stop.
  const exportStop = new AbortController();
  let exportDeadline: NodeJS.Timeout | undefined;
  const onStop = () => {
    exportDeadline = setTimeout(() => exportStop.abort(), EXPORT_AFTER_STOP_MS);
  };
  if (options.signal?.aborted) onStop();
  else options.signal?.addEventListener('abort', onStop, { once: true });
  const hostId = hostIdentity(config.hostId);
  const adapterOptions: AdapterOptions = {
    logger,
    append: options.append,
    exportSignal: exportStop.signal,
    oneShot: options.trigger === 'once',
    ...(options.importer ? { importer: options.importer } : {}),
  };
  // The one redaction point of documents: every exporter receives them with the agent's secrets scrubbed.
  const scrubber = createScrubber(config.secrets);
  // Config errors (e.g. an adapter package missing) surface before anything runs.
  const fetcher = await createFetcher(config, adapterOptions);
  let exporter: Exporter;
  const differential = new DifferentialResults({ stateDir: config.stateDir, mode: config.results, snapshotIntervalSec: config.snapshotIntervalSec });
  try {
    // Differential outside: it decides what to send from the values; the scrubber cleans what is sent.
    exporter = differential.wrap(scrubbingExporter(await createExporter(config, adapterOptions), scrubber));
  } catch (error) {
    clearTimeout(exportDeadline);
    options.signal?.removeEventListener('abort', onStop);
    await fetcher.close?.().catch(() => undefined);
    throw error;
  }

  // What the run did, also when core throws (fetch failed, refused, interrupted) and returns no summary.
  let fetched: FetchResult | undefined;
  const recordingFetcher: Fetcher = {
    name: fetcher.name,
    fetch: async (fetchOptions) => (fetched = await fetcher.fetch(fetchOptions)),
  };
  const counts = { run: 0, ok: 0, failed: 0, timed_out: 0, results: 0, errors: 0 };
  let bundle: RunSummaryDocument['bundle'];

  logger.info('run started', { run_id: runId, category: options.category, trigger: options.trigger, bundle: config.bundle });
  let summary: RunSummary | undefined;
  let error: unknown;
  try {
    summary = await run({
      fetcher: recordingFetcher,
      exporter,
      category: options.category,
      publicKey: config.publicKey,
      sequenceState: createSequenceStateFile(config.stateDir, bundleSourceKey(config)),
      agentVersion: AGENT_VERSION,
      runId,
      nice: config.nice,
      ionice: config.ionice,
      containment: config.containment,
      checkSettings: config.checkSettings,
      handleProcessSignals: options.handleProcessSignals,
      ...(options.signal ? { signal: options.signal } : {}),
      ...(config.concurrency ? { concurrency: config.concurrency } : {}),
      ...(config.timeoutSec ? { timeoutSec: config.timeoutSec } : {}),
      ...(config.username ? { username: config.username } : {}),
      ...(config.instanceId ? { instanceId: config.instanceId } : {}),
      ...(hostId ? { hostId } : {}),
      onCheckDone: (event) => {
        counts.run++;
        counts.results += event.results.length;
        if (event.error) {
          counts.errors++;
          if (event.error.reason === 'timeout') counts.timed_out++;
          else counts.failed++;
        } else counts.ok++;
        bundle ??= event.results[0]?.bundle ?? event.error?.bundle;
        logger.debug('check done', { run_id: runId, check: event.check.id, duration_ms: event.durationMs, error: event.error?.reason });
        if (options.onCheckDone) options.onCheckDone(scrubber.empty ? event : { ...event, results: scrubber.value(event.results), error: scrubber.value(event.error) });
      },
    });
  } catch (caught) {
    error = caught;
  }

  let exportError: string | undefined = summary?.export_error;
  let totals: ExportSummary = summary?.export ?? { delivered: 0, spooled: 0, failed: 0 };
  if (!summary) {
    try {
      totals = await exporter.flush();
    } catch (caught) {
      exportError ??= errorText(caught);
    }
  }
  // A call that threw (e.g. the index refused) still spooled or counted documents: report what it did.
  totals = exporter.summary?.() ?? totals;
  const interrupted = options.signal?.aborted ?? false;
  const facts = (): RunFacts => ({
    error,
    interrupted,
    exportFailed: exportError !== undefined,
    export: exportTotals(totals),
    checksFailed: summary ? summary.checks_failed + summary.checks_timed_out : counts.failed + counts.timed_out,
  });
  const durationMs = Date.now() - started;
  const history = await readHostHistory(config.stateDir);
  const document: RunSummaryDocument = {
    kind: 'run',
    '@timestamp': new Date().toISOString(),
    run_id: runId,
    host: { hostname: hostname(), ...(hostId ? { id: hostId } : {}) },
    ...(config.username ? { user: { name: config.username } } : {}),
    ...(config.instanceId ? { cloud: { instance: { id: config.instanceId } } } : {}),
    agent: { version: AGENT_VERSION },
    ...((summary?.bundle ?? bundle) ? { bundle: summary?.bundle ?? bundle! } : {}),
    category: options.category,
    outcome: outcomeOf(facts()),
    ...(error !== undefined ? { message: scrubber.text(redactText(errorText(error))) } : {}),
    checks: summary
      ? { run: summary.checks_run, ok: summary.checks_ok, failed: summary.checks_failed, timed_out: summary.checks_timed_out }
      : { run: counts.run, ok: counts.ok, failed: counts.failed, timed_out: counts.timed_out },
    results: summary?.results ?? counts.results,
    // core counts the run error record too when it throws.
    errors: summary?.errors ?? counts.errors + (error !== undefined ? 1 : 0),
    export: exportTotals(totals),
    spooled: totals.spooled,
    bytes_fetched: fetched?.bytesTransferred ?? 0,
    ...(fetched ? { bundle_unchanged: fetched.unchanged } : {}),
    duration_ms: durationMs,
    peak_rss_bytes: process.resourceUsage().maxRSS * 1024,
    trigger: options.trigger,
    ...(config.results === 'differential' ? differential.summaryFields() : {}),
    ...history,
    ...(summary?.containment ? { containment: summary.containment } : {}),
    ...(options.overrunAfterMs !== undefined ? { overrun: Date.now() - (options.dueAt ?? started) > options.overrunAfterMs } : {}),
  };

  if (exporter.exportRunSummary) {
    try {
      await exporter.exportRunSummary(document);
    } catch (caught) {
      exportError ??= errorText(caught);
    }
  }
  try {
    totals = await exporter.close();
  } catch (caught) {
    exportError ??= errorText(caught);
  }
  totals = exporter.summary?.() ?? totals;
  clearTimeout(exportDeadline);
  options.signal?.removeEventListener('abort', onStop);
  try {
    const state = await differential.commit(totals, exportError !== undefined || summary?.export_failed === true);
    if (state === 'invalidated') logger.warn('documents were dropped from the spool: the next run of each category exports a full snapshot', { run_id: runId });
    await saveHostHistory(config.stateDir, history, document);
  } catch (caught) {
    logger.error('could not save the results state; the next run exports a full snapshot', { run_id: runId, error: errorText(caught) });
  }
  await fetcher.close?.().catch((caught) => logger.warn('closing the fetcher failed', { error: errorText(caught) }));

  // The exit code also counts what happened to the run summary itself (e.g. spooled, or refused).
  const outcome = outcomeOf(facts());
  const exitCode = exitCodeOf(facts());
  // As the document says, with the final totals: the run summary's own export may have changed them.
  const final = exportTotals(totals);
  const fields = { ...document, outcome, export: final, spooled: final.spooled, kind: undefined, '@timestamp': undefined, host: undefined, agent: undefined };
  if (error !== undefined) logger.error('run failed', { ...fields, error: errorText(error) });
  else if (interrupted) logger.warn('run interrupted', fields);
  else if (exportError !== undefined) logger.error('run completed but exporting failed', { ...fields, error: exportError });
  else if (outcome === 'export_incomplete') {
    logger.error('run completed but some documents did not reach their index (refused, dropped or unreadable in the spool)', fields);
  } else logger.info('run completed', fields);
  if (!exporter.exportRunSummary) logger.debug('the exporter takes no run summary documents; logged above instead', { exporter: exporter.name });
  if (document.overrun) {
    logger.warn('run overran its interval', { run_id: runId, category: options.category, duration_ms: durationMs, interval_ms: options.overrunAfterMs });
  }
  return { summary, document, error, exportError, exitCode };
}
