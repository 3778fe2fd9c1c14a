/**
 * The Elasticsearch exporter: documents are batched, sent with the Bulk API (bulk.ts), kept in the on-disk
 * spool while Elasticsearch cannot take them (spool-delivery.ts, outage.ts) and delivered by a later call.
 * This file holds the calls of the Exporter contract and the order of things within them.
 */
import {
  createScrubber,
  ExportError,
  redactText,
  type ErrorDocument,
  type ExportSummary,
  type Exporter,
  type ResultDocument,
  type RunSummaryDocument,
} from '@gather/core';
import { send } from './bulk.js';
import type { ExportContext } from './context.js';
import { dailyIndex } from './daily.js';
import type { Entry } from './entry.js';
import { DocumentIds } from './ids.js';
import { hostEntry, latestEntry, markSnapshot, staleLatestQuery, type SnapshotMark } from './latest.js';
import { resultSource } from './mapping.js';
import { resolveOptions, SCOPE, type EsExporterOptions, type EsLogLevel } from './options.js';
import { Outage } from './outage.js';
import { Spool, SpoolLockedError } from './spool.js';
import { drain, keep } from './spool-delivery.js';
import { Templates } from './templates.js';
import { describe, EsTransport, STOPPED } from './transport.js';

/** The core summary plus what this exporter also counts. */
export interface EsExportSummary extends ExportSummary {
  retried: number;
  deadLettered: number;
  dropped: number;
  recovered: number;
  unreadable: number;
}

export interface EsExporter extends Exporter {
  /** Exports the run summary to `runsIndex` (id `<run_id>:run`), with the same batching, retries and spool. */
  exportRunSummary(summary: RunSummaryDocument): Promise<void>;
  /** Installs the index templates now (`gather-fleet setup`); throws an ExportError when it cannot. */
  setup(): Promise<void>;
  /** Totals so far, also after a call threw. */
  summary(): EsExportSummary;
}

/** Creates the Elasticsearch exporter; nothing is sent before the first export call. */
export function createEsExporter(options: EsExporterOptions): EsExporter {
  return new ElasticsearchExporter(options);
}

/** Sends gather documents to Elasticsearch with the Bulk API; see the package README. */
class ElasticsearchExporter implements EsExporter {
  readonly name = 'elasticsearch';
  private readonly ctx: ExportContext;
  private readonly templates: Templates;
  /** Snapshots exported: once delivered, the host's older documents of the category leave gather-latest. */
  private readonly snapshots = new Map<string, SnapshotMark>();
  private readonly ids = new DocumentIds();
  private batch: Entry[] = [];
  private batchBytes = 0;
  private readonly inflight = new Set<Promise<void>>();
  private started: Promise<void> | undefined;
  private closed = false;

  constructor(private readonly options: EsExporterOptions) {
    const settings = resolveOptions(options);
    const text = (message: string) => redactText(message, settings.secrets);
    const log = (level: EsLogLevel, line: string) => options.log?.(`[gather] [exporter-es] ${text(line)}`, level);
    const ctx: ExportContext = {
      settings,
      transport: new EsTransport(settings, options, options.signal),
      outage: new Outage(settings, () => ctx.spool?.dir, log, text),
      stats: { delivered: 0, spooled: 0, failed: 0, retried: 0, deadLettered: 0, dropped: 0, recovered: 0, unreadable: 0 },
      scrub: createScrubber(settings.secrets),
      plainIndices: new Set(),
      signal: options.signal,
      spool: undefined,
      pendingError: undefined,
      log,
      text,
    };
    this.ctx = ctx;
    this.templates = new Templates(ctx, {
      installTemplates: options.installTemplates !== false,
      stateDir: options.stateDir,
      indexSettings: options.indexSettings,
      currentState: options.currentState ?? false,
    });
  }

  summary(): EsExportSummary {
    return { ...this.ctx.stats };
  }

  async setup(): Promise<void> {
    if (this.closed) throw new ExportError('The exporter is closed; create a new one.', SCOPE);
    if (await this.ready()) return;
    const { outage, settings } = this.ctx;
    throw (
      outage.fatal ??
      new ExportError(`Elasticsearch at ${settings.where} is unavailable (${this.ctx.text(describe(outage.lastCause))}).`, SCOPE)
    );
  }

  async exportResults(results: readonly ResultDocument[]): Promise<void> {
    await this.begin();
    const { settings, scrub } = this.ctx;
    for (const doc of results) {
      const clean = scrub.value(doc);
      this.add({
        index: dailyIndex(settings.resultsIndex, doc['@timestamp']),
        id: this.ids.result(doc),
        source: resultSource(clean),
        bytes: 0,
      });
      if (this.options.currentState) {
        const latest = latestEntry(clean, settings.latestIndex);
        if (latest) this.add({ ...latest, bytes: 0 });
        markSnapshot(this.snapshots, doc);
      }
      await this.dispatchWhenFull();
    }
    this.end();
  }

  async exportErrors(errors: readonly ErrorDocument[]): Promise<void> {
    await this.begin();
    const { settings, scrub } = this.ctx;
    for (const doc of errors) {
      const source = JSON.stringify(scrub.value(doc));
      this.add({ index: dailyIndex(settings.errorsIndex, doc['@timestamp']), id: this.ids.error(doc), source, bytes: 0 });
      await this.dispatchWhenFull();
    }
    this.end();
  }

  /** The run summary, after the run's results and errors: same batches, ids, retries and spool as they. */
  async exportRunSummary(summary: RunSummaryDocument): Promise<void> {
    await this.begin();
    const { settings, scrub } = this.ctx;
    const clean = scrub.value(summary);
    this.add({
      index: dailyIndex(settings.runsIndex, summary['@timestamp']),
      id: this.ids.run(summary),
      source: JSON.stringify(clean),
      bytes: 0,
    });
    const host = this.options.currentState ? hostEntry(clean, settings.hostsIndex) : undefined;
    if (host) this.add({ ...host, bytes: 0 });
    await this.dispatchWhenFull();
    this.end();
  }

  async flush(): Promise<ExportSummary> {
    const flushStarted = Date.now();
    await this.begin();
    if (this.batch.length > 0) await this.dispatch(this.takeBatch());
    await this.settle();
    // Deliver the spool, unless Elasticsearch failed during this very flush (it was just tried) or asked to wait.
    const { spool, outage } = this.ctx;
    if (spool && !spool.empty && !outage.fatal && outage.openedAt < flushStarted) {
      outage.probeNow();
      if (!outage.isDown()) await this.drain();
    }
    this.end();
    return this.summary();
  }

  async close(): Promise<ExportSummary> {
    if (this.closed) return this.summary();
    let failure: unknown;
    try {
      await this.flush();
      await this.removeStaleLatest();
    } catch (error) {
      failure = error;
    }
    this.closed = true;
    await this.ctx.spool?.close().catch(() => undefined);
    await this.ctx.transport.close();
    if (failure) throw failure;
    return this.summary();
  }

  // ------------------------------------------------------------------ call lifecycle

  private async begin(): Promise<void> {
    if (this.closed) throw new ExportError('The exporter is closed; create a new one.', SCOPE);
    this.started ??= this.start();
    await this.started;
  }

  /** First use: open the spool and deliver what an earlier run left in it, before any new document. */
  private async start(): Promise<void> {
    const { spoolDir } = this.options;
    if (!spoolDir) return;
    const { ctx } = this;
    try {
      ctx.spool = await Spool.open(spoolDir, {
        maxBytes: ctx.settings.spoolMaxBytes,
        segmentBytes: ctx.settings.spoolSegmentBytes,
        onLockTakeover: ({ path, previous, reason }) =>
          ctx.log('warn', `Took over the stale spool lock ${path} (${reason}; previous owner pid ${previous?.pid ?? 'unknown'}).`),
      });
    } catch (error) {
      ctx.outage.fatal = new ExportError(
        error instanceof SpoolLockedError
          ? `Cannot use spoolDir: ${ctx.text(error.message)}. Give every agent process its own spoolDir.`
          : `Cannot use spoolDir ${spoolDir}: ${ctx.text(describe(error))}. Make it a writable directory (mode 0700) of the agent's user.`,
        SCOPE,
      );
      return;
    }
    if (!ctx.spool.empty) await this.drain();
  }

  /** Ends a call: reports a failure that happened during it, and keeps reporting a fatal one. */
  private end(): void {
    const error = this.ctx.pendingError ?? this.ctx.outage.fatal;
    this.ctx.pendingError = undefined;
    if (error) throw error;
  }

  private ready(): Promise<boolean> {
    return this.templates.ensureReady();
  }

  private drain(): Promise<void> {
    return drain(this.ctx, () => this.ready());
  }

  // ------------------------------------------------------------------ batching and sending

  private add(entry: Entry): void {
    entry.bytes = entry.source.length + entry.id.length + entry.index.length + 40;
    this.batch.push(entry);
    this.batchBytes += entry.bytes;
  }

  private takeBatch(): Entry[] {
    const batch = this.batch;
    this.batch = [];
    this.batchBytes = 0;
    return batch;
  }

  private async dispatchWhenFull(): Promise<void> {
    const { maxBatchDocs, maxBatchBytes } = this.ctx.settings;
    if (this.batch.length >= maxBatchDocs || this.batchBytes >= maxBatchBytes) await this.dispatch(this.takeBatch());
  }

  /** Waits until every bulk request in flight has completed (and its documents are accounted for). */
  private async settle(): Promise<void> {
    while (this.inflight.size > 0) await Promise.all([...this.inflight]);
  }

  /** Sends one batch of new documents, or spools it when Elasticsearch is known to be down. */
  private async dispatch(batch: Entry[]): Promise<void> {
    const { ctx } = this;
    const { outage } = ctx;
    if (batch.length === 0) return;
    if (ctx.transport.stopped) return keep(ctx, batch, STOPPED);
    if (outage.fatal) return keep(ctx, batch, outage.fatal);
    if (ctx.spool && !ctx.spool.empty && !outage.isDown()) {
      // The spool goes first, in order.
      await this.settle();
      await this.drain();
    }
    if (outage.fatal) return keep(ctx, batch, outage.fatal);
    if (outage.isDown()) return keep(ctx, batch, outage.lastCause);
    if (!(await this.ready())) return keep(ctx, batch, outage.fatal ?? outage.lastCause);
    while (this.inflight.size >= ctx.settings.maxInFlight) await Promise.race(this.inflight);
    const task: Promise<void> = send(ctx, batch)
      .then(async (outcome) => {
        ctx.stats.delivered += outcome.delivered;
        ctx.stats.deadLettered += outcome.deadLettered;
        ctx.stats.failed += outcome.failed;
        if (outcome.undeliverable.length > 0) await keep(ctx, outcome.undeliverable, outcome.cause);
      })
      .catch((error: unknown) => {
        // Only a bug gets here (send() accounts for every failure); never lose the documents silently.
        ctx.stats.failed += batch.length;
        ctx.pendingError ??= new ExportError(`Unexpected failure sending ${batch.length} documents: ${ctx.text(describe(error))}.`, SCOPE);
      })
      .finally(() => this.inflight.delete(task));
    this.inflight.add(task);
  }

  // ------------------------------------------------------------------ current state

  /**
   * After a delivered snapshot: deletes the host's gather-latest documents of that category the snapshot did
   * not write (results that vanished while the agent had no state). A snapshot still in the spool waits.
   */
  private async removeStaleLatest(): Promise<void> {
    const { ctx } = this;
    if (this.snapshots.size === 0 || ctx.outage.fatal || ctx.outage.isDown() || ctx.stats.spooled > 0) return;
    const marks = [...this.snapshots.values()];
    this.snapshots.clear();
    try {
      await this.removeStale(marks);
    } catch (error) {
      ctx.log(
        'warn',
        `Could not remove stale documents from ${ctx.settings.latestIndex} (${ctx.text(describe(error))}); the next snapshot does it.`,
      );
    }
  }

  private async removeStale(marks: SnapshotMark[]): Promise<void> {
    const { transport, settings } = this.ctx;
    const latestIndex = settings.latestIndex;
    await transport.request({ method: 'POST', path: `/${latestIndex}/_refresh` }, { ignore: [404] });
    for (const mark of marks) {
      const found = await transport.request<{ hits?: { hits?: Array<{ _id: string }> } }>(
        { method: 'POST', path: `/${latestIndex}/_search`, body: { size: 10_000, _source: false, query: staleLatestQuery(mark) } },
        { ignore: [404] },
      );
      const stale = (found.hits?.hits ?? []).map(
        (hit): Entry => ({ index: latestIndex, id: hit._id, op: 'delete', version: mark.version, source: '{}', bytes: 0 }),
      );
      // Best effort, not counted (not documents of the run): if it fails, the next snapshot does it again.
      if (stale.length > 0) await send(this.ctx, stale);
    }
  }
}
