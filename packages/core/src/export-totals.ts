import type { ExportSummary, ExportTotals } from './types.js';

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
