import type { CheckDoneEvent, RunSummary } from '@gather/core';

const MAX_CELL = 60;

function cell(text: string): string {
  const flat = text.replace(/\s+/g, ' ');
  return flat.length > MAX_CELL ? `${flat.slice(0, MAX_CELL - 1)}…` : flat;
}

function describe(event: CheckDoneEvent): string {
  const results = event.results.map((r) => `${r.name}=${typeof r.value === 'string' ? r.value : JSON.stringify(r.value)}`).join(' ');
  if (!event.error) return results || '(no results)';
  return `ERROR ${event.error.reason}: ${event.error.message}${results ? ` | ${results}` : ''}`;
}

/** A short human table of a run, for terminals: one row per check, then the totals. */
export function formatTable(events: readonly CheckDoneEvent[], summary: RunSummary): string {
  const rows = [...events]
    .sort((a, b) => a.check.category.localeCompare(b.check.category) || a.check.id.localeCompare(b.check.id))
    .map((e) => [e.check.id, e.check.category, e.error ? 'error' : 'ok', `${e.durationMs} ms`, cell(describe(e))]);
  const header = ['CHECK', 'CATEGORY', 'STATUS', 'DURATION', 'RESULT'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ');
  const totals =
    `${summary.checks_run} checks: ${summary.checks_ok} ok, ${summary.checks_failed} failed, ${summary.checks_timed_out} timed out; ` +
    `${summary.results} results, ${summary.errors} errors in ${summary.duration_ms} ms` +
    (summary.bundle ? ` (bundle ${summary.bundle.version})` : '');
  return [line(header), ...rows.map(line), '', totals].join('\n') + '\n';
}
