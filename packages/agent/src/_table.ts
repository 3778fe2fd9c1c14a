import type { CheckDoneEvent, RunSummary } from '@gather/core';

const MAX_CELL = 60;

function cell(text: string): string {
  const flat = text.replace(/\s+/g, ' ');
  return flat.length > MAX_CELL ? `${flat.slice(0, MAX_CELL - 1)}…` : flat;
}

function describe(event: CheckDoneEvent): string {
  let results = '';
  for (const r of event.results) {
    if (results.length > MAX_CELL) break;
    const value = typeof r.value === 'string' ? r.value : JSON.stringify(r.value);
    results += `${results ? ' ' : ''}${r.name}=${value.length > MAX_CELL ? `${value.slice(0, MAX_CELL)}…` : value}`;
  }
  if (!event.error) return results || '(no results)';
  return `ERROR ${event.error.reason}: ${event.error.message}${results ? ` | ${results}` : ''}`;
}

export type TableRow = [id: string, category: string, status: string, duration: string, result: string];

/** One table row per check; only this short text is kept, so memory does not grow with check output. */
export function tableRow(event: CheckDoneEvent): TableRow {
  return [event.check.id, event.check.category, event.error ? 'error' : 'ok', `${event.durationMs} ms`, cell(describe(event))];
}

/** A short human table of a run, for terminals: one row per check, then the totals. */
export function formatTable(tableRows: readonly TableRow[], summary: RunSummary): string {
  const rows = [...tableRows].sort((a, b) => a[1].localeCompare(b[1]) || a[0].localeCompare(b[0]));
  const header = ['CHECK', 'CATEGORY', 'STATUS', 'DURATION', 'RESULT'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ');
  const totals =
    `${summary.checks_run} checks: ${summary.checks_ok} ok, ${summary.checks_failed} failed, ${summary.checks_timed_out} timed out; ` +
    `${summary.results} results, ${summary.errors} errors in ${summary.duration_ms} ms` +
    (summary.bundle ? ` (bundle ${summary.bundle.version})` : '');
  return [line(header), ...rows.map(line), '', totals].join('\n') + '\n';
}
