/**
 * The current state of the fleet, next to the history in the daily indices:
 *
 * - `gather-latest`: one document per host × result name (`<host.id>:<name>`), written by the runs that
 *   change it and deleted when the result is removed. Writes use external versioning with the document's
 *   `@timestamp` in ms, so a spool replayed late never overwrites newer state (Elasticsearch answers 409,
 *   which counts as delivered). A full snapshot also deletes the host's documents of that category it no
 *   longer holds (`staleLatest`), so after a snapshot the index equals it exactly.
 * - `gather-hosts`: one document per host (`<host.id>`), written from each run summary with the same
 *   external versioning: first and last seen, last run per category with its outcome, agent and bundle.
 */
import { createHash } from 'node:crypto';
import type { ResultDocument, RunSummaryDocument } from '@gather/core';
import { boundedId as boundedIdOf } from './ids.js';
import { identityProperties, indexTemplate, mappingsOf, resultSource, RESULTS_MAPPINGS } from './mapping.js';

const keyword = { type: 'keyword', ignore_above: 1024 } as const;

/** The bulk operation an entry stands for (`create` for the append-only daily indices). */
export type BulkOp = 'create' | 'index' | 'delete';

export interface CurrentStateEntry {
  index: string;
  id: string;
  op: BulkOp;
  version?: number;
  source: string;
}

/** `gather-latest`: the results mappings (typed values), plus when the host last reported the value. */
export const LATEST_MAPPINGS = RESULTS_MAPPINGS;

/** `gather-hosts`: who the host is, when it was seen, its last run per category. */
export const HOSTS_MAPPINGS = {
  dynamic: false,
  properties: {
    ...identityProperties,
    bundle: { properties: { version: keyword, sha256: keyword } },
    first_seen: { type: 'date' },
    last_seen: { type: 'date' },
    outcome: keyword,
    runs: {
      properties: Object.fromEntries(
        ['abuse', 'analytics'].map((c) => [c, { properties: { '@timestamp': { type: 'date' }, run_id: keyword, outcome: keyword } }]),
      ),
    },
  },
} as const;

export type CurrentStateKind = 'latest' | 'hosts';

export function currentStateMappings(kind: CurrentStateKind): Record<string, unknown> {
  return kind === 'latest' ? mappingsOf('results') : HOSTS_MAPPINGS;
}

/** The identity a host's documents are keyed by: `host.id`, else the hostname. */
export function hostKey(doc: { host: { id?: string; hostname: string } }): string {
  return doc.host.id ?? doc.host.hostname;
}

/** The version of a write: the document's time in ms (later runs win), or undefined when unreadable. */
function versionOf(timestamp: string): number | undefined {
  const ms = Date.parse(timestamp);
  return Number.isFinite(ms) && ms > 0 ? ms : undefined;
}

/** The write to `gather-latest` a result stands for; undefined for results without `change` (not diffed). */
export function latestEntry(doc: ResultDocument, index: string): CurrentStateEntry | undefined {
  const version = versionOf(doc['@timestamp']);
  if (!doc.change || version === undefined) return undefined;
  const id = boundedIdOf(`${hostKey(doc)}:${doc.name}`);
  if (doc.change === 'removed') return { index, id, op: 'delete', version, source: '{}' };
  return { index, id, op: 'index', version, source: resultSource(doc) };
}

/**
 * The document of `gather-hosts` a run summary stands for: the whole document, written with external
 * versioning by the run's time (a late spool replay loses), from the summary and what the agent remembers
 * of the host (`first_seen`, `last_runs`), so no script is needed (clusters may not offer one).
 */
export function hostEntry(summary: RunSummaryDocument, index: string): CurrentStateEntry | undefined {
  const at = summary['@timestamp'];
  const version = versionOf(at);
  if (version === undefined) return undefined;
  const run = { '@timestamp': at, run_id: summary.run_id, outcome: summary.outcome };
  const categories = summary.category === 'all' ? ['abuse', 'analytics'] : [summary.category];
  const doc = {
    host: summary.host,
    ...(summary.user ? { user: summary.user } : {}),
    ...(summary.cloud ? { cloud: summary.cloud } : {}),
    agent: summary.agent,
    ...(summary.bundle ? { bundle: summary.bundle } : {}),
    outcome: summary.outcome,
    first_seen: summary.first_seen ?? at,
    last_seen: at,
    runs: { ...summary.last_runs, ...Object.fromEntries(categories.map((c) => [c, run])) },
  };
  return { index, id: boundedIdOf(hostKey(summary)), op: 'index', version, source: JSON.stringify(doc) };
}

/** A snapshot seen by the exporter: after it is delivered, the host's other documents of the category go. */
export interface SnapshotMark {
  host: string;
  category: string;
  run_id: string;
  /** The newest version the snapshot wrote; deletes use it, so they lose against anything newer. */
  version: number;
}

export function markSnapshot(marks: Map<string, SnapshotMark>, doc: ResultDocument): void {
  if (doc.change !== 'snapshot') return;
  const version = versionOf(doc['@timestamp']);
  if (version === undefined) return;
  const key = `${hostKey(doc)}\u0000${doc.category}`;
  const mark = marks.get(key);
  if (!mark || mark.run_id !== doc.run_id) marks.set(key, { host: hostKey(doc), category: doc.category, run_id: doc.run_id, version });
  else mark.version = Math.max(mark.version, version);
}

/** The query for a host's documents of a category written by other runs than the snapshot's. */
export function staleLatestQuery(mark: SnapshotMark): Record<string, unknown> {
  return {
    bool: {
      filter: [
        {
          bool: {
            should: [
              { term: { 'host.id': mark.host } },
              { bool: { must_not: { exists: { field: 'host.id' } }, filter: { term: { 'host.hostname': mark.host } } } },
            ],
          },
        },
        { term: { category: mark.category } },
      ],
      must_not: [{ term: { run_id: mark.run_id } }],
    },
  };
}

/** Body of the template of `gather-latest` or `gather-hosts` (exact name: one index each, no days). */
export function currentStateTemplate(options: {
  index: string;
  kind: CurrentStateKind;
  priority: number;
  settings?: Record<string, unknown>;
}): Record<string, unknown> {
  const base = indexTemplate({
    index: options.index,
    kind: 'results',
    priority: options.priority,
    ...(options.settings ? { settings: options.settings } : {}),
  });
  const template = { ...(base.template as Record<string, unknown>), mappings: currentStateMappings(options.kind) };
  const hash = createHash('sha256')
    .update(JSON.stringify({ patterns: base.index_patterns, priority: options.priority, template }))
    .digest('hex')
    .slice(0, 16);
  return { ...base, template, _meta: { ...(base._meta as Record<string, unknown>), hash } };
}
