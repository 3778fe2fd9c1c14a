/**
 * The exporter's side of the on-disk spool: documents Elasticsearch cannot take now are kept there
 * (`keep`), and a later call delivers them first, in order (`drain`), before any new document.
 */
import { ExportError } from '@gather/core';
import { send } from './bulk.js';
import type { ExportContext } from './context.js';
import { dailyIndex } from './daily.js';
import { dropReportEntry } from './dead-letters.js';
import type { BatchOutcome, Entry } from './entry.js';
import type { BulkOp } from './latest.js';
import { SCOPE } from './options.js';
import type { SpoolRecord, SpoolSegment } from './spool.js';
import { describe, STOPPED } from './transport.js';

/** An entry as one spool line: where it goes, its id and the document. */
function spoolLine(e: Entry): string {
  return (
    `{"index":${JSON.stringify(e.index)},"id":${JSON.stringify(e.id)},${e.deadLetter ? '"dead_letter":true,' : ''}` +
    `${e.op ? `"op":"${e.op}",` : ''}${e.version !== undefined ? `"version":${e.version},` : ''}"doc":${e.source}}`
  );
}

/** A spool record back as an entry. */
function entryOf(ctx: ExportContext, r: SpoolRecord): Entry {
  const source = JSON.stringify(r.doc);
  const { dead_letter: deadLetter, op, version } = r as { dead_letter?: boolean; op?: BulkOp; version?: number };
  // A record spooled by a gather before daily indices names the plain index: written there, it would make a
  // concrete index of the name the daily indices' alias needs (and every new document of the day is refused).
  const index = ctx.plainIndices.has(r.index) ? dailyIndex(r.index, r.doc?.['@timestamp']) : r.index;
  return {
    index,
    id: r.id,
    source,
    bytes: source.length + r.id.length + 60,
    ...(deadLetter ? { deadLetter } : {}),
    ...(op ? { op } : {}),
    ...(version !== undefined ? { version } : {}),
  };
}

/** Keeps documents Elasticsearch could not take: in the spool, or counted as failed without one. */
export async function keep(ctx: ExportContext, entries: Entry[], cause: unknown): Promise<void> {
  const { stats, spool, settings } = ctx;
  const n = entries.length;
  if (!spool) {
    stats.failed += n;
    if (!ctx.outage.fatal) {
      ctx.pendingError ??= new ExportError(
        `${n} documents could not be delivered to Elasticsearch at ${settings.where} (${ctx.text(describe(cause))}). ` +
          'Check that it is running and reachable; set spoolDir to keep documents on disk during outages.',
        SCOPE,
      );
    }
    return;
  }
  let outcome;
  try {
    outcome = await spool.append(entries.map(spoolLine));
  } catch (error) {
    stats.failed += n;
    ctx.pendingError ??= new ExportError(
      `${n} documents could neither be delivered (${ctx.text(describe(cause))}) nor spooled to ${spool.dir} (${ctx.text(describe(error))}). Free disk space or fix the directory's permissions.`,
      SCOPE,
    );
    return;
  }
  for (const { segment, docs, currentState } of outcome.dropped) accountDrop(ctx, segment, docs, currentState);
  if (!outcome.stored) {
    stats.failed += n;
    stats.dropped += n;
    ctx.pendingError ??= new ExportError(
      `${n} documents are larger than spoolMaxBytes (${settings.spoolMaxBytes}) and could not be spooled. Raise spoolMaxBytes or lower maxBatchBytes.`,
      SCOPE,
    );
    return;
  }
  // Current-state writes travel in the spool too, but count in no total (they are not documents of the run).
  stats.spooled += entries.filter((e) => !e.op).length;
  if (cause === STOPPED)
    ctx.log('info', `Stopped before Elasticsearch acknowledged ${n} documents: spooled to ${spool.dir}, delivered by the next run.`);
}

function accountDrop(ctx: ExportContext, segment: SpoolSegment, docs: number, currentState: number): void {
  ctx.stats.dropped += docs;
  if (segment.own) {
    // Current-state writes were never counted as spooled (nor as anything else): only the run's documents move.
    ctx.stats.spooled -= docs - currentState;
    ctx.stats.failed += docs - currentState;
  }
  ctx.log(
    'error',
    `Spool full (spoolMaxBytes ${ctx.settings.spoolMaxBytes}): dropped its oldest segment with ${docs} documents; an error document will report it.`,
  );
}

/**
 * Delivers the spool in order: drop reports, then segments oldest first; stops at the first outage.
 * `ready` installs the templates first (false: Elasticsearch cannot take documents now).
 */
export async function drain(ctx: ExportContext, ready: () => Promise<boolean>): Promise<void> {
  const { spool, outage, transport, settings } = ctx;
  if (!spool || spool.empty || outage.fatal || transport.stopped) return;
  if (!(await ready())) return;
  for (const report of spool.pendingReports()) {
    const outcome = await send(ctx, [dropReportEntry(report, settings.errorsIndex, settings.spoolMaxBytes, ctx.scrub)]);
    if (outcome.undeliverable.length > 0) return;
    await spool.removeReport(report);
  }
  for (const segment of await spool.pending()) {
    if (!(await drainSegment(ctx, segment))) return;
  }
}

/** Delivers one segment and removes it; false when some of it is still undelivered (it stays). */
async function drainSegment(ctx: ExportContext, segment: SpoolSegment): Promise<boolean> {
  const { spool, outage, transport, settings, stats } = ctx;
  let records: SpoolRecord[];
  let corrupt: number;
  try {
    ({ records, corrupt } = await spool!.read(segment));
  } catch (error) {
    ctx.pendingError ??= new ExportError(`Cannot read the spool segment ${segment.file}: ${ctx.text(describe(error))}.`, SCOPE);
    return false;
  }
  const entries = records.map((r) => entryOf(ctx, r));
  const total: BatchOutcome = { delivered: 0, deadLettered: 0, failed: 0, undeliverable: [] };
  const running = new Set<Promise<void>>();
  for (const batch of batchesOf(entries, settings.maxBatchDocs, settings.maxBatchBytes)) {
    if (total.undeliverable.length > 0 || outage.fatal || transport.stopped) break;
    while (running.size >= settings.maxInFlight) await Promise.race(running);
    const task: Promise<void> = send(ctx, batch)
      .then((o) => {
        total.delivered += o.delivered;
        total.currentState = (total.currentState ?? 0) + (o.currentState ?? 0);
        total.deadLettered += o.deadLettered;
        total.failed += o.failed;
        total.undeliverable.push(...o.undeliverable);
      })
      .finally(() => running.delete(task));
    running.add(task);
  }
  await Promise.all(running);
  if (
    total.undeliverable.length > 0 ||
    outage.fatal ||
    transport.stopped ||
    total.delivered + (total.currentState ?? 0) + total.deadLettered + total.failed < entries.length
  ) {
    // Left in the spool: what was delivered answers 409 next time.
    return false;
  }
  await spool!.remove(segment);
  const currentWrites = entries.filter((e) => e.op).length;
  const count = (segment.records ?? entries.length + corrupt) - currentWrites;
  if (segment.own) {
    stats.spooled -= count;
    stats.delivered += total.delivered;
  } else stats.recovered += total.delivered;
  stats.deadLettered += total.deadLettered;
  stats.failed += total.failed + corrupt;
  stats.unreadable += corrupt;
  if (corrupt > 0)
    ctx.log('error', `${corrupt} unreadable lines in the damaged spool segment ${segment.file} were skipped: those documents are lost.`);
  ctx.log('info', `Delivered spool segment ${segment.file} (${total.delivered} documents).`);
  return true;
}

function batchesOf(entries: Entry[], maxDocs: number, maxBytes: number): Entry[][] {
  const batches: Entry[][] = [];
  let current: Entry[] = [];
  let bytes = 0;
  for (const entry of entries) {
    current.push(entry);
    bytes += entry.bytes;
    if (current.length >= maxDocs || bytes >= maxBytes) {
      batches.push(current);
      current = [];
      bytes = 0;
    }
  }
  if (current.length > 0) batches.push(current);
  return batches;
}
