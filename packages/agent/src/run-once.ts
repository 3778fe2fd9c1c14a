/**
 * One run, as `gather-agent run` and each scheduled run of the daemon do it: build the fetcher and the
 * exporter from the configuration, call core's run(), then export a run summary document and close.
 */
import {
  createSequenceStateFile,
  createScrubber,
  exportTotals,
  redactText,
  runRecorded,
  scrubbingExporter,
  type Category,
  type CheckDoneEvent,
  type ExportSummary,
  type Exporter,
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
import { keepHeapLean, LEAN_HEAP_AFTER_CHECKS } from './lean-heap.js';
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
  /** core's run record: what was fetched, which bundle, the checks, the documents, the export totals. */
  summary: RunSummary;
  document: RunSummaryDocument;
  /** Why the run did not complete, if it did not. */
  error: unknown;
  /** Also set when the run completed but the run summary or the final flush could not be exported. */
  exportError: string | undefined;
  exitCode: number;
}

/** The exporter's totals as the run summary document carries them (core's exportTotals, kept as an export). */
export { exportTotals };

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
  const differential = new DifferentialResults({
    stateDir: config.stateDir,
    mode: config.results,
    snapshotIntervalSec: config.snapshotIntervalSec,
  });
  try {
    // Differential outside: it decides what to send from the values; the scrubber cleans what is sent.
    exporter = differential.wrap(scrubbingExporter(await createExporter(config, adapterOptions), scrubber));
  } catch (error) {
    clearTimeout(exportDeadline);
    options.signal?.removeEventListener('abort', onStop);
    await fetcher.close?.().catch(() => undefined);
    throw error;
  }

  // Read while the run goes on; needed only for its summary.
  const hostHistory = readHostHistory(config.stateDir);
  let checksDone = 0;
  logger.info('run started', { run_id: runId, category: options.category, trigger: options.trigger, bundle: config.bundle });
  // core's run record: what was fetched and run, also when the run could not complete.
  const { summary, error } = await runRecorded({
    fetcher,
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
      if (++checksDone === LEAN_HEAP_AFTER_CHECKS) keepHeapLean();
      logger.debug('check done', { run_id: runId, check: event.check.id, duration_ms: event.durationMs, error: event.error?.reason });
      if (options.onCheckDone)
        options.onCheckDone(
          scrubber.empty ? event : { ...event, results: scrubber.value(event.results), error: scrubber.value(event.error) },
        );
    },
  });

  let exportError: string | undefined = summary.export_error;
  // A call that threw (e.g. the index refused) still spooled or counted documents: report what it did.
  let totals: ExportSummary = exporter.summary?.() ?? summary.export;
  // Asked each time, not once here: a stop while the run summary is exported (in close()) is a stop too.
  const interrupted = () => options.signal?.aborted ?? false;
  const history = await hostHistory;
  const finishedAt = Date.now();
  const overrun = options.overrunAfterMs !== undefined ? finishedAt - (options.dueAt ?? started) > options.overrunAfterMs : undefined;
  const timestamp = new Date(finishedAt).toISOString();

  const changes = config.results === 'differential' ? differential.summaryFields() : {};
  const peakRssBytes = process.resourceUsage().maxRSS * 1024;
  const facts = (): RunFacts => ({
    error,
    interrupted: interrupted(),
    exportFailed: exportError !== undefined,
    export: exportTotals(totals),
    checksFailed: summary.checks_failed + summary.checks_timed_out,
  });

  /** The run summary document: the one place it is built, from core's run record and the export totals so far. */
  const describeRun = (): RunSummaryDocument => {
    const exported = exportTotals(totals);
    return {
      kind: 'run',
      '@timestamp': timestamp,
      run_id: runId,
      host: { hostname: hostname(), ...(hostId ? { id: hostId } : {}) },
      ...(config.username ? { user: { name: config.username } } : {}),
      ...(config.instanceId ? { cloud: { instance: { id: config.instanceId } } } : {}),
      agent: { version: AGENT_VERSION },
      ...(summary.bundle ? { bundle: summary.bundle } : {}),
      category: options.category,
      outcome: outcomeOf(facts()),
      ...(error !== undefined ? { message: scrubber.text(redactText(errorText(error))) } : {}),
      checks: { run: summary.checks_run, ok: summary.checks_ok, failed: summary.checks_failed, timed_out: summary.checks_timed_out },
      results: summary.results,
      // core counts the run error record too when the run could not complete.
      errors: summary.errors,
      export: exported,
      spooled: exported.spooled,
      bytes_fetched: summary.fetch?.bytesTransferred ?? 0,
      ...(summary.fetch ? { bundle_unchanged: summary.fetch.unchanged } : {}),
      duration_ms: finishedAt - started,
      peak_rss_bytes: peakRssBytes,
      trigger: options.trigger,
      ...changes,
      ...history,
      ...(summary.containment ? { containment: summary.containment } : {}),
      ...(overrun !== undefined ? { overrun } : {}),
    };
  };
  const document = describeRun();

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
  // Three independent files and connections: saved and closed at once.
  const [committed, saved] = await Promise.allSettled([
    differential.commit(totals, exportError !== undefined || summary.export_failed),
    saveHostHistory(config.stateDir, history, document),
    fetcher.close?.().catch((caught) => logger.warn('closing the fetcher failed', { error: errorText(caught) })),
  ]);
  if (committed.status === 'rejected') {
    logger.error('could not save the results state; the next run exports a full snapshot', {
      run_id: runId,
      error: errorText(committed.reason),
    });
  } else if (committed.value === 'invalidated') {
    logger.warn('documents were dropped from the spool: the next run of each category exports a full snapshot', { run_id: runId });
  }
  if (saved.status === 'rejected') {
    logger.error('could not save the host history (first seen, last runs)', { run_id: runId, error: errorText(saved.reason) });
  }

  // The exit code also counts what happened to the run summary itself (e.g. spooled, or refused); the log
  // says what the document says, with the final totals.
  const final = describeRun();
  const { outcome } = final;
  const exitCode = exitCodeOf(facts());
  const fields = { ...final, kind: undefined, '@timestamp': undefined, host: undefined, agent: undefined };
  if (error !== undefined) logger.error('run failed', { ...fields, error: errorText(error) });
  else if (interrupted()) logger.warn('run interrupted', fields);
  else if (exportError !== undefined) logger.error('run completed but exporting failed', { ...fields, error: exportError });
  else if (outcome === 'export_incomplete') {
    logger.error('run completed but some documents did not reach their index (refused, dropped or unreadable in the spool)', fields);
  } else logger.info('run completed', fields);
  if (!exporter.exportRunSummary)
    logger.debug('the exporter takes no run summary documents; logged above instead', { exporter: exporter.name });
  if (document.overrun) {
    logger.warn('run overran its interval', {
      run_id: runId,
      category: options.category,
      duration_ms: document.duration_ms,
      interval_ms: options.overrunAfterMs,
    });
  }
  return { summary, document, error, exportError, exitCode };
}
