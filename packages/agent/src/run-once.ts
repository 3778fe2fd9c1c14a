/**
 * One run, as `gather-agent run` and each scheduled run of the daemon do it: build the fetcher and the
 * exporter from the configuration, call core's run(), then export a run summary document and close.
 */
import {
  AbortedError,
  BundleRefusedError,
  ConfigError,
  FetchError,
  redactText,
  run,
  type Category,
  type CheckDoneEvent,
  type ExportSummary,
  type Exporter,
  type Fetcher,
  type FetchResult,
  type RunOutcome,
  type RunSummary,
  type RunSummaryDocument,
} from '@gather/core';
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import { createExporter, createFetcher, type AdapterOptions } from './adapters.js';
import type { AgentConfig } from './config.js';
import { EXIT } from './exit-codes.js';
import { errorText, type Logger } from './logger.js';
import { AGENT_VERSION } from './version.js';

export interface RunOnceOptions {
  config: AgentConfig;
  category: Category | 'all';
  logger: Logger;
  trigger: 'once' | 'schedule';
  /** Aborting it kills the running checks (what was collected is still exported). */
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

function exitCodeFor(summary: RunSummary): number {
  if (summary.export_failed) return EXIT.EXPORT_FAILED;
  if (summary.export.spooled > 0) return EXIT.SPOOLED;
  if (summary.checks_failed + summary.checks_timed_out > 0) return EXIT.CHECKS_FAILED;
  return EXIT.OK;
}

export function exitCodeForError(error: unknown): number {
  if (error instanceof BundleRefusedError) return EXIT.BUNDLE_REFUSED;
  if (error instanceof FetchError) return EXIT.FETCH_FAILED;
  if (error instanceof ConfigError) return EXIT.USAGE;
  if (error instanceof AbortedError) return EXIT.INTERRUPTED;
  return EXIT.INTERNAL;
}

function outcomeOf(summary: RunSummary | undefined, error: unknown): RunOutcome {
  if (error instanceof BundleRefusedError) return 'bundle_refused';
  if (error instanceof FetchError) return 'fetch_failed';
  if (error instanceof AbortedError) return 'interrupted';
  if (error !== undefined || !summary) return 'failed';
  if (summary.export_failed) return 'export_failed';
  if (summary.export.spooled > 0) return 'spooled';
  if (summary.checks_failed + summary.checks_timed_out > 0) return 'checks_failed';
  return 'ok';
}

export async function runOnce(options: RunOnceOptions): Promise<RunOnceResult> {
  const { config, logger } = options;
  const started = Date.now();
  const runId = randomUUID();
  const adapterOptions: AdapterOptions = { logger, append: options.append, ...(options.importer ? { importer: options.importer } : {}) };
  // Config errors (e.g. an adapter package missing) surface before anything runs.
  const fetcher = await createFetcher(config, adapterOptions);
  let exporter: Exporter;
  try {
    exporter = await createExporter(config, adapterOptions);
  } catch (error) {
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
      agentVersion: AGENT_VERSION,
      runId,
      nice: config.nice,
      ionice: config.ionice,
      containment: config.containment,
      handleProcessSignals: options.handleProcessSignals,
      ...(options.signal ? { signal: options.signal } : {}),
      ...(config.concurrency ? { concurrency: config.concurrency } : {}),
      ...(config.timeoutSec ? { timeoutSec: config.timeoutSec } : {}),
      ...(config.username ? { username: config.username } : {}),
      ...(config.instanceId ? { instanceId: config.instanceId } : {}),
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
        options.onCheckDone?.(event);
      },
    });
  } catch (caught) {
    error = caught;
  }

  let exportError: string | undefined = summary?.export_error;
  let exportTotals: ExportSummary = summary?.export ?? { delivered: 0, spooled: 0, failed: 0 };
  if (!summary) {
    try {
      exportTotals = await exporter.flush();
    } catch (caught) {
      exportError ??= errorText(caught);
    }
  }
  const durationMs = Date.now() - started;
  const document: RunSummaryDocument = {
    kind: 'run',
    '@timestamp': new Date().toISOString(),
    run_id: runId,
    host: {
      hostname: hostname(),
      ...(config.username ? { username: config.username } : {}),
      ...(config.instanceId ? { instance_id: config.instanceId } : {}),
    },
    agent: { version: AGENT_VERSION },
    ...((summary?.bundle ?? bundle) ? { bundle: summary?.bundle ?? bundle! } : {}),
    category: options.category,
    outcome: outcomeOf(summary, error),
    ...(error !== undefined ? { message: redactText(errorText(error), config.secrets) } : {}),
    checks: summary
      ? { run: summary.checks_run, ok: summary.checks_ok, failed: summary.checks_failed, timed_out: summary.checks_timed_out }
      : { run: counts.run, ok: counts.ok, failed: counts.failed, timed_out: counts.timed_out },
    results: summary?.results ?? counts.results,
    // core counts the run error record too when it throws.
    errors: summary?.errors ?? counts.errors + (error !== undefined ? 1 : 0),
    export: { delivered: exportTotals.delivered, spooled: exportTotals.spooled, failed: exportTotals.failed },
    spooled: exportTotals.spooled,
    bytes_fetched: fetched?.bytesTransferred ?? 0,
    ...(fetched ? { bundle_unchanged: fetched.unchanged } : {}),
    duration_ms: durationMs,
    peak_rss_bytes: process.resourceUsage().maxRSS * 1024,
    trigger: options.trigger,
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
    await exporter.close();
  } catch (caught) {
    exportError ??= errorText(caught);
  }
  await fetcher.close?.().catch((caught) => logger.warn('closing the fetcher failed', { error: errorText(caught) }));

  const fields = { ...document, kind: undefined, '@timestamp': undefined, host: undefined, agent: undefined };
  if (error !== undefined) logger.error('run failed', { ...fields, error: errorText(error) });
  else if (exportError !== undefined) logger.error('run completed but exporting failed', { ...fields, error: exportError });
  else logger.info('run completed', fields);
  if (!exporter.exportRunSummary) logger.debug('the exporter takes no run summary documents; logged above instead', { exporter: exporter.name });
  if (document.overrun) {
    logger.warn('run overran its interval', { run_id: runId, category: options.category, duration_ms: durationMs, interval_ms: options.overrunAfterMs });
  }

  let exitCode = error !== undefined ? exitCodeForError(error) : exitCodeFor(summary!);
  if (error === undefined && exportError !== undefined && exitCode !== EXIT.EXPORT_FAILED) exitCode = EXIT.EXPORT_FAILED;
  return { summary, document, error, exportError, exitCode };
}
