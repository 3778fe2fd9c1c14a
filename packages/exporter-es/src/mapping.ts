/**
 * How gather documents are laid out in Elasticsearch: the composable index templates installed on first use,
 * and the typed `value_*` fields added to every result so values of any JSON type never conflict.
 */
import { createHash } from 'node:crypto';
import type { ResultDocument } from '@gather/core';

/** Bump when the mappings change; stored in the templates' `_meta`. */
export const MAPPING_VERSION = 2;

/** Longest keyword indexed (chars). Lucene refuses terms over 32766 bytes; 8191 chars fit in UTF-8. */
export const KEYWORD_IGNORE_ABOVE = 8191;

/** Nesting allowed in the flattened `value_array` / `value_object` fields (deeper values keep `value_json` only). */
export const FLATTENED_DEPTH_LIMIT = 20;

const keyword = { type: 'keyword', ignore_above: 1024 } as const;
const longKeyword = { type: 'keyword', ignore_above: KEYWORD_IGNORE_ABOVE } as const;
const searchableText = { type: 'keyword', ignore_above: KEYWORD_IGNORE_ABOVE, fields: { text: { type: 'text' } } } as const;

/** Who sent a document, in ECS names (`host.id`, `host.hostname`, `user.name`, `cloud.instance.id`, `agent.version`). */
export const identityProperties = {
  host: { properties: { id: keyword, hostname: keyword } },
  user: { properties: { name: keyword } },
  cloud: { properties: { instance: { properties: { id: keyword } } } },
  agent: { properties: { version: keyword } },
} as const;

const commonProperties = {
  '@timestamp': { type: 'date' },
  kind: keyword,
  run_id: keyword,
  category: keyword,
  check: keyword,
  name: keyword,
  ...identityProperties,
  bundle: { properties: { version: keyword, sha256: keyword } },
  duration_ms: { type: 'double' },
} as const;

/** Mappings of the results index. `dynamic: false`: unknown fields stay in `_source`, never in the mapping. */
export const RESULTS_MAPPINGS = {
  dynamic: false,
  properties: {
    ...commonProperties,
    type: keyword,
    /** Differential results: added, changed, removed (with the last value) or snapshot. */
    change: keyword,
    /** The value as the check printed it: kept in `_source`, never parsed, so it can never conflict. */
    value: { type: 'object', enabled: false },
    /** The value as JSON, whatever its type: exact match, prefix, and full text on `value_json.text`. */
    value_json: searchableText,
    value_boolean: { type: 'boolean' },
    value_number: { type: 'double' },
    value_string: searchableText,
    /** Arrays as `{ "items": [...] }`: every leaf searchable as a keyword, e.g. `value_array: "x"`. */
    value_array: { type: 'flattened', ignore_above: KEYWORD_IGNORE_ABOVE, depth_limit: FLATTENED_DEPTH_LIMIT },
    /** Objects: `value_object.some.key: "x"`, terms aggregations on `value_object.some.key`. */
    value_object: { type: 'flattened', ignore_above: KEYWORD_IGNORE_ABOVE, depth_limit: FLATTENED_DEPTH_LIMIT },
  },
} as const;

/** Mappings of the errors index: check and run errors, rejected documents, spool drop reports. */
export const ERRORS_MAPPINGS = {
  dynamic: false,
  properties: {
    ...commonProperties,
    reason: keyword,
    message: { type: 'text', fields: { keyword } },
    exit_code: { type: 'long' },
    signal: keyword,
    stdout: { type: 'text' },
    stderr: { type: 'text' },
    /** Dead letters: the rejected document as it was sent, never parsed. */
    original: { type: 'object', enabled: false },
    original_index: keyword,
    original_id: longKeyword,
    rejection: { properties: { status: { type: 'integer' }, type: keyword, reason: { type: 'text' } } },
    /** Spool drop reports. */
    dropped_docs: { type: 'long' },
    spool_segment: keyword,
  },
} as const;

/**
 * Mappings of the runs index: one run summary document per run (`kind: "run"`). Every count is numeric, so
 * `sum`/`avg`/`max` work across hosts and runs; outcome and trigger are keywords for terms aggregations.
 */
export const RUNS_MAPPINGS = {
  dynamic: false,
  properties: {
    '@timestamp': { type: 'date' },
    kind: keyword,
    run_id: keyword,
    category: keyword,
    outcome: keyword,
    trigger: keyword,
    ...identityProperties,
    bundle: { properties: { version: keyword, sha256: keyword } },
    /** Why the run did not complete, credentials redacted. */
    message: { type: 'text', fields: { keyword } },
    checks: { properties: { run: { type: 'long' }, ok: { type: 'long' }, failed: { type: 'long' }, timed_out: { type: 'long' } } },
    results: { type: 'long' },
    errors: { type: 'long' },
    /** The exporter's totals for the run (the summary itself excluded). */
    export: {
      properties: {
        delivered: { type: 'long' },
        spooled: { type: 'long' },
        failed: { type: 'long' },
        retried: { type: 'long' },
        dead_lettered: { type: 'long' },
        dropped: { type: 'long' },
        unreadable: { type: 'long' },
        recovered: { type: 'long' },
      },
    },
    spooled: { type: 'long' },
    bytes_fetched: { type: 'long' },
    bundle_unchanged: { type: 'boolean' },
    duration_ms: { type: 'double' },
    peak_rss_bytes: { type: 'long' },
    overrun: { type: 'boolean' },
    changes: {
      properties: {
        added: { type: 'long' },
        changed: { type: 'long' },
        removed: { type: 'long' },
        snapshot: { type: 'long' },
        unchanged: { type: 'long' },
        mode: keyword,
      },
    },
    /** How the checks were contained (`cgroup` / `pgroup`) and how many processes outlived their check. */
    containment: { properties: { mechanism: keyword, killed_after_exit: { type: 'long' } } },
  },
} as const;

export type IndexKind = 'results' | 'errors' | 'runs';

/** The mappings of each kind of index. */
export function mappingsOf(kind: IndexKind): typeof RESULTS_MAPPINGS | typeof ERRORS_MAPPINGS | typeof RUNS_MAPPINGS {
  return kind === 'results' ? RESULTS_MAPPINGS : kind === 'errors' ? ERRORS_MAPPINGS : RUNS_MAPPINGS;
}

export interface TemplateOptions {
  index: string;
  kind: IndexKind;
  priority: number;
  settings?: Record<string, unknown>;
}

/**
 * Replicas follow the cluster's size: none on a single node (so it stays green), one as soon as a second data
 * node joins (Elasticsearch adjusts existing indices too). Used unless the user's settings choose replicas.
 */
export const DEFAULT_INDEX_SETTINGS: Readonly<Record<string, unknown>> = { 'index.auto_expand_replicas': '0-1' };

const REPLICA_SETTINGS = ['number_of_replicas', 'auto_expand_replicas'];

/** Whether settings (flat `index.x`, short `x` or nested `{ index: { x } }`) say how many replicas to keep. */
function choosesReplicas(settings: Record<string, unknown>): boolean {
  const nested = settings.index;
  return (
    Object.keys(settings).some((key) => REPLICA_SETTINGS.includes(key.replace(/^index\./, ''))) ||
    (typeof nested === 'object' && nested !== null && choosesReplicas(nested as Record<string, unknown>))
  );
}

/** The settings of a template: the user's, plus the default replicas unless they choose their own. */
export function templateSettings(user: Record<string, unknown> | undefined): Record<string, unknown> {
  if (user && choosesReplicas(user)) return user;
  return { ...DEFAULT_INDEX_SETTINGS, ...user };
}

/** Name of the composable template installed for an index. */
export function templateName(index: string): string {
  return `${index}-gather`;
}

/**
 * Body of `PUT _index_template/<name>`. It matches exactly the index name: a wildcard would overlap the
 * template of another gather index named with the same prefix (e.g. `gather-results-eu`), which
 * Elasticsearch refuses at equal priority.
 */
export function indexTemplate(options: TemplateOptions): Record<string, unknown> {
  const template = { settings: templateSettings(options.settings), mappings: mappingsOf(options.kind) };
  // The hash tells an exporter whether the installed template is already this one (then it does not PUT).
  const hash = createHash('sha256')
    .update(JSON.stringify({ patterns: [options.index], priority: options.priority, template }))
    .digest('hex')
    .slice(0, 16);
  return {
    index_patterns: [options.index],
    priority: options.priority,
    template,
    _meta: { managed_by: '@gather/exporter-es', mapping_version: MAPPING_VERSION, hash },
  };
}

function depth(value: unknown, limit: number): number {
  if (typeof value !== 'object' || value === null) return 0;
  if (limit <= 0) return 1;
  let deepest = 0;
  for (const item of Array.isArray(value) ? value : Object.values(value)) {
    deepest = Math.max(deepest, depth(item, limit - 1));
    if (deepest >= limit) break;
  }
  return deepest + 1;
}

/** The typed fields of a value: exactly one `value_<type>` (when indexable) plus `value_json`. */
export function typedValueFields(value: unknown): Record<string, unknown> {
  const out: Record<string, unknown> = { value_json: JSON.stringify(value) ?? 'null' };
  if (typeof value === 'boolean') out.value_boolean = value;
  else if (typeof value === 'number') {
    if (Number.isFinite(value)) out.value_number = value;
  } else if (typeof value === 'string') out.value_string = value;
  else if (Array.isArray(value)) {
    // +1 for the "items" wrapper: flattened fields accept objects only.
    if (depth(value, FLATTENED_DEPTH_LIMIT) + 1 <= FLATTENED_DEPTH_LIMIT) out.value_array = { items: value };
  } else if (typeof value === 'object' && value !== null) {
    if (depth(value, FLATTENED_DEPTH_LIMIT) <= FLATTENED_DEPTH_LIMIT) out.value_object = value;
  }
  return out;
}

/** The JSON source of a result as indexed: the document unchanged, plus its typed value fields. */
export function resultSource(doc: ResultDocument): string {
  const json = JSON.stringify(doc);
  const typed = JSON.stringify(typedValueFields(doc.value));
  // Splice instead of spreading into a new object: one serialisation of the (possibly large) value less.
  return json.length <= 2 ? typed : `${json.slice(0, -1)},${typed.slice(1)}`;
}
