/**
 * Daily indices: results, errors and run summaries go to `<index>-YYYY.MM.DD`, the UTC day of the document's
 * own `@timestamp` (not of the moment it is sent), so a retried or spooled document lands in the same index
 * under the same id, and retention is a matter of deleting whole indices (`gather-fleet prune`, or ILM).
 */
import { createHash } from 'node:crypto';
import { indexTemplate, type TemplateOptions } from './mapping.js';

/** The `YYYY.MM.DD` suffix of a daily index. */
const DAY = /^(\d{4})\.(\d{2})\.(\d{2})$/;

/** RFC 3339, as gather writes `@timestamp`; Date's own parser is lenient (it reads "x 123" as the year 123). */
const RFC3339 = /^2\d{3}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/i;

/**
 * `YYYY.MM.DD` of a timestamp, UTC. A missing or malformed one (which Elasticsearch then rejects into the
 * errors index) counts as `now`: the document still goes to an index the template matches.
 */
export function dayOf(timestamp: unknown, now: Date = new Date()): string {
  let date = typeof timestamp === 'string' && RFC3339.test(timestamp) ? new Date(timestamp) : now;
  if (Number.isNaN(date.getTime()) || date.getUTCFullYear() < 2000 || date.getUTCFullYear() > 2999) date = now;
  return date.toISOString().slice(0, 10).replace(/-/g, '.');
}

/** The daily index of a document: `<base>-YYYY.MM.DD`. */
export function dailyIndex(base: string, timestamp: unknown, now?: Date): string {
  return `${base}-${dayOf(timestamp, now)}`;
}

/**
 * The pattern of the daily indices of `base`, for templates and queries. `-2*` (years 2000-2999) rather than
 * `-*`: the template of `gather-results` must not match the daily indices of an index named
 * `gather-results-eu` (overlapping patterns at equal priority are refused by Elasticsearch).
 */
export function dailyPattern(base: string): string {
  return `${base}-2*`;
}

/** The UTC day (midnight) a daily index of `base` stands for, or undefined when `name` is not one. */
export function dayOfIndex(base: string, name: string): Date | undefined {
  if (!name.startsWith(`${base}-`)) return undefined;
  const match = DAY.exec(name.slice(base.length + 1));
  if (!match) return undefined;
  const date = new Date(Date.UTC(Number(match[1]), Number(match[2]) - 1, Number(match[3])));
  return dayOf(date.toISOString()) === match.slice(1).join('.') ? date : undefined;
}

/**
 * The daily indices of `base` among `names` that are older than `keepDays` full days: with keepDays 7 on
 * 2026-12-08, the indices of 2026-12-01 and before are expired, 2026-12-02 .. 2026-12-08 are kept.
 */
export function expiredIndices(base: string, names: readonly string[], keepDays: number, now: Date = new Date()): string[] {
  const today = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate());
  const oldestKept = today - (keepDays - 1) * 86_400_000;
  return names.filter((name) => {
    const day = dayOfIndex(base, name);
    return day !== undefined && day.getTime() < oldestKept;
  });
}

export interface DailyTemplateOptions extends TemplateOptions {
  /**
   * Give every daily index the alias `<index>`, so `gather-results` reads all days. Off when a concrete
   * index of that name exists already (from an older gather): an alias may not shadow an index.
   */
  alias: boolean;
}

/** Body of `PUT _index_template/<index>-gather` for the daily indices of `index`. */
export function dailyTemplate(options: DailyTemplateOptions): Record<string, unknown> {
  const base = indexTemplate(options);
  const template = {
    ...(base.template as Record<string, unknown>),
    ...(options.alias ? { aliases: { [options.index]: {} } } : {}),
  };
  const patterns = [dailyPattern(options.index)];
  const hash = createHash('sha256')
    .update(JSON.stringify({ patterns, priority: options.priority, template }))
    .digest('hex')
    .slice(0, 16);
  return { ...base, index_patterns: patterns, template, _meta: { ...(base._meta as Record<string, unknown>), hash, daily: true } };
}
