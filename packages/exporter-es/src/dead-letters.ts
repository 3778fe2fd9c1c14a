/**
 * The error documents that stand for documents Elasticsearch will never take: a document it rejected (kept
 * whole in `original`, with the reason) and a spool segment dropped because the spool was full.
 */
import type { Scrubber } from '@gather/core';
import { dailyIndex } from './daily.js';
import type { BulkItem, Entry } from './entry.js';
import { boundedId } from './ids.js';
import type { DropReport } from './spool.js';

/** The error document that keeps a rejected document and the reason, for the errors index. */
export function deadLetterEntry(entry: Entry, item: BulkItem, errorsIndex: string, scrub: Scrubber): Entry {
  let original: unknown;
  try {
    original = JSON.parse(entry.source);
  } catch {
    original = entry.source;
  }
  const o = (typeof original === 'object' && original !== null ? original : {}) as Record<string, unknown>;
  const str = (value: unknown) => (typeof value === 'string' && value.length <= 1024 ? value : undefined);
  const host = (typeof o.host === 'object' && o.host !== null ? o.host : {}) as Record<string, unknown>;
  const agent = (typeof o.agent === 'object' && o.agent !== null ? o.agent : {}) as Record<string, unknown>;
  const reasonText = `${item.error?.type ?? 'error'}: ${item.error?.reason ?? 'rejected'}`;
  const doc = {
    kind: 'error',
    '@timestamp': new Date().toISOString(),
    run_id: str(o.run_id) ?? 'unknown',
    host: { hostname: str(host.hostname) ?? 'unknown', ...(str(host.id) ? { id: str(host.id) } : {}) },
    agent: { version: str(agent.version) ?? 'unknown' },
    ...(str(o.check) ? { check: str(o.check) } : {}),
    ...(str(o.category) ? { category: str(o.category) } : {}),
    ...(str(o.name) ? { name: str(o.name) } : {}),
    reason: 'export_rejected',
    message: `Elasticsearch rejected document ${entry.id} for index ${entry.index} (HTTP ${item.status} ${reasonText}). The document is in "original".`,
    original_index: entry.index,
    original_id: entry.id,
    original,
    rejection: { status: item.status, type: item.error?.type ?? 'error', reason: item.error?.reason ?? '' },
  };
  const source = JSON.stringify(scrub.value(doc));
  return {
    index: dailyIndex(errorsIndex, doc['@timestamp']),
    id: boundedId(`${entry.id}:rejected`),
    source,
    bytes: source.length,
    deadLetter: true,
  };
}

/** The error document reporting a spool segment dropped undelivered (the spool was full). */
export function dropReportEntry(report: DropReport, errorsIndex: string, spoolMaxBytes: number, scrub: Scrubber): Entry {
  const sample = (report.sample ?? {}) as { run_id?: unknown; host?: unknown; agent?: unknown };
  const doc = {
    kind: 'error',
    '@timestamp': report.at,
    run_id: typeof sample.run_id === 'string' ? sample.run_id : 'spool',
    host: sample.host ?? { hostname: 'unknown' },
    agent: sample.agent ?? { version: 'unknown' },
    reason: 'spool_dropped',
    message:
      `The spool was full (spoolMaxBytes ${spoolMaxBytes}): segment ${report.segment} with ${report.docs} documents ` +
      `(ids ${report.first_id ?? '?'} .. ${report.last_id ?? '?'}) was dropped undelivered. Raise spoolMaxBytes or fix the outage sooner.`,
    dropped_docs: report.docs,
    spool_segment: report.segment,
  };
  const source = JSON.stringify(scrub.value(doc));
  return { index: dailyIndex(errorsIndex, report.at), id: report.id, source, bytes: source.length, deadLetter: true };
}
