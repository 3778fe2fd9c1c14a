/**
 * The operator's questions, one function each, answered from the current-state indices (gather-latest,
 * gather-hosts) — lookups, not aggregations over history — and, for retention, from the daily index names.
 */
import { type Client, errors as esErrors } from '@elastic/elasticsearch';
import { GatherError } from '@gather/core';
import { dailyPattern, expiredIndices } from '@gather/exporter-es';

const SCOPE = { scope: 'fleet' } as const;

export interface FleetIndices {
  resultsIndex: string;
  errorsIndex: string;
  runsIndex: string;
  latestIndex: string;
  hostsIndex: string;
}

export const DEFAULT_INDICES: FleetIndices = {
  resultsIndex: 'gather-results',
  errorsIndex: 'gather-errors',
  runsIndex: 'gather-runs',
  latestIndex: 'gather-latest',
  hostsIndex: 'gather-hosts',
};

/** Elasticsearch could not be reached or refused the request (exit 3). */
export class UnreachableError extends GatherError {
  override name = 'UnreachableError';
  constructor(message: string, options?: { cause?: unknown }) {
    super('GATHER_EXPORT', message, { ...SCOPE, ...options });
  }
  static override isInstance(error: unknown): error is UnreachableError {
    return GatherError.isInstance(error) && error.name === 'UnreachableError';
  }
}

/** The indices the question needs do not exist yet (exit 4). */
export class MissingIndexError extends GatherError {
  override name = 'MissingIndexError';
  constructor(message: string) {
    super('GATHER_CONFIG', message, SCOPE);
  }
  static override isInstance(error: unknown): error is MissingIndexError {
    return GatherError.isInstance(error) && error.name === 'MissingIndexError';
  }
}

export interface HostRow {
  id: string;
  hostname: string;
  last_seen?: string;
  first_seen?: string;
  outcome?: string;
  agent?: string;
  bundle?: string;
  runs?: Record<string, { '@timestamp': string; outcome: string }>;
}

export interface LatestResult {
  host: string;
  hostname: string;
  '@timestamp': string;
  category: string;
  check: string;
  name: string;
  value: unknown;
}

type Source = Record<string, any>;

/** Wraps client calls: unreachable and missing-index failures become errors that say what to do. */
async function ask<T>(where: string, indices: string[], call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    if (error instanceof esErrors.ResponseError && error.statusCode === 404) {
      throw new MissingIndexError(
        `Index ${indices.join(', ')} does not exist in Elasticsearch at ${where}. Run "gather-fleet setup", and let agents report (exporter elasticsearch) first.`,
      );
    }
    if (error instanceof esErrors.ResponseError) {
      throw new UnreachableError(
        `Elasticsearch at ${where} refused the request (HTTP ${error.statusCode}). Check the credentials and their privileges (read on gather-*).`,
        { cause: error },
      );
    }
    throw new UnreachableError(
      `Cannot reach Elasticsearch at ${where} (${(error as Error).message}). Check --es-url / GATHER_ES_URL and that it is running.`,
      { cause: error },
    );
  }
}

function hostRow(id: string, s: Source): HostRow {
  return {
    id,
    hostname: s.host?.hostname ?? '',
    ...(s.last_seen ? { last_seen: s.last_seen } : {}),
    ...(s.first_seen ? { first_seen: s.first_seen } : {}),
    ...(s.outcome ? { outcome: s.outcome } : {}),
    ...(s.agent?.version ? { agent: s.agent.version } : {}),
    ...(s.bundle?.version ? { bundle: s.bundle.version } : {}),
    ...(s.runs ? { runs: s.runs } : {}),
  };
}

function latestRow(s: Source): LatestResult {
  return {
    host: s.host?.id ?? s.host?.hostname,
    hostname: s.host?.hostname ?? '',
    '@timestamp': s['@timestamp'],
    category: s.category,
    check: s.check,
    name: s.name,
    value: s.value,
  };
}

export class Fleet {
  constructor(
    private readonly client: Client,
    private readonly where: string,
    readonly indices: FleetIndices = DEFAULT_INDICES,
  ) {}

  /** Hosts with any `abuse.*.detected` true now, with the other current results of the detecting checks, newest first. */
  async abused(): Promise<Array<{ host: string; hostname: string; since: string; detected: string[]; evidence: LatestResult[] }>> {
    const index = this.indices.latestIndex;
    const found = await ask(this.where, [index], () =>
      this.client.search<Source>({
        index,
        size: 10_000,
        query: { bool: { filter: [{ wildcard: { name: 'abuse.*.detected' } }, { term: { value_boolean: true } }] } },
        sort: [{ '@timestamp': 'desc' }],
      }),
    );
    const byHost = new Map<
      string,
      { host: string; hostname: string; since: string; detected: string[]; checks: Set<string>; evidence: LatestResult[] }
    >();
    for (const hit of found.hits.hits) {
      const row = latestRow(hit._source!);
      const entry = byHost.get(row.host) ?? {
        host: row.host,
        hostname: row.hostname,
        since: row['@timestamp'],
        detected: [],
        checks: new Set<string>(),
        evidence: [],
      };
      entry.detected.push(row.name);
      entry.checks.add(row.check);
      if (row['@timestamp'] > entry.since) entry.since = row['@timestamp'];
      byHost.set(row.host, entry);
    }
    for (const entry of byHost.values()) {
      const evidence = await ask(this.where, [index], () =>
        this.client.search<Source>({
          index,
          size: 1000,
          query: { bool: { filter: [{ term: { 'host.id': entry.host } }, { terms: { check: [...entry.checks] } }] } },
          sort: [{ name: 'asc' }],
        }),
      );
      entry.evidence = evidence.hits.hits.map((h) => latestRow(h._source!)).filter((r) => !entry.detected.includes(r.name));
    }
    return [...byHost.values()].sort((a, b) => b.since.localeCompare(a.since)).map(({ checks: _checks, ...rest }) => rest);
  }

  /** Hosts whose last run is older than `sinceMs` ago, oldest first. */
  async silent(sinceMs: number, now: Date = new Date()): Promise<HostRow[]> {
    const index = this.indices.hostsIndex;
    const cutoff = new Date(now.getTime() - sinceMs).toISOString();
    const found = await ask(this.where, [index], () =>
      this.client.search<Source>({
        index,
        size: 10_000,
        query: { bool: { should: [{ range: { last_seen: { lt: cutoff } } }, { bool: { must_not: { exists: { field: 'last_seen' } } } }] } },
        sort: [{ last_seen: { order: 'asc', missing: '_first' } }],
      }),
    );
    return found.hits.hits.map((h) => hostRow(h._id!, h._source!));
  }

  /** One host (by host.id or hostname) and its current results, grouped by check. */
  async host(idOrName: string): Promise<{ host: HostRow; checks: Record<string, LatestResult[]> } | undefined> {
    const found = await ask(this.where, [this.indices.hostsIndex], () =>
      this.client.search<Source>({
        index: this.indices.hostsIndex,
        size: 2,
        query: { bool: { should: [{ ids: { values: [idOrName] } }, { term: { 'host.hostname': idOrName } }] } },
      }),
    );
    const hit = found.hits.hits[0];
    if (!hit) return undefined;
    const host = hostRow(hit._id!, hit._source!);
    const results = await ask(this.where, [this.indices.latestIndex], () =>
      this.client.search<Source>({
        index: this.indices.latestIndex,
        size: 10_000,
        query: {
          bool: {
            should: [
              { term: { 'host.id': host.id } },
              { bool: { must_not: { exists: { field: 'host.id' } }, filter: { term: { 'host.hostname': host.id } } } },
            ],
          },
        },
        sort: [{ check: 'asc' }, { name: 'asc' }],
      }),
    );
    const checks: Record<string, LatestResult[]> = {};
    for (const h of results.hits.hits) {
      const row = latestRow(h._source!);
      (checks[`${row.category}/${row.check}`] ??= []).push(row);
    }
    return { host, checks };
  }

  /** Hosts per outcome, agent version and bundle version; analytics results most often true across hosts. */
  async summary(top = 10): Promise<{
    hosts: number;
    outcome: Record<string, number>;
    agent: Record<string, number>;
    bundle: Record<string, number>;
    analytics: Record<string, number>;
  }> {
    const buckets = (agg: any): Record<string, number> => Object.fromEntries((agg?.buckets ?? []).map((b: any) => [b.key, b.doc_count]));
    const hosts = await ask(this.where, [this.indices.hostsIndex], () =>
      this.client.search({
        index: this.indices.hostsIndex,
        size: 0,
        track_total_hits: true,
        aggs: {
          outcome: { terms: { field: 'outcome', size: 20 } },
          agent: { terms: { field: 'agent.version', size: 20 } },
          bundle: { terms: { field: 'bundle.version', size: 20 } },
        },
      }),
    );
    const analytics = await ask(this.where, [this.indices.latestIndex], () =>
      this.client.search({
        index: this.indices.latestIndex,
        size: 0,
        query: { bool: { filter: [{ term: { category: 'analytics' } }, { term: { value_boolean: true } }] } },
        aggs: { names: { terms: { field: 'name', size: top } } },
      }),
    );
    const total = hosts.hits.total;
    const aggs = hosts.aggregations as Record<string, unknown>;
    return {
      hosts: typeof total === 'number' ? total : (total?.value ?? 0),
      outcome: buckets(aggs?.outcome),
      agent: buckets(aggs?.agent),
      bundle: buckets(aggs?.bundle),
      analytics: buckets((analytics.aggregations as Record<string, unknown>)?.names),
    };
  }

  /** The daily indices older than `keepDays` days; deleted unless `dryRun`. */
  async prune(keepDays: number, dryRun: boolean, now: Date = new Date()): Promise<string[]> {
    const expired: string[] = [];
    for (const base of [this.indices.resultsIndex, this.indices.errorsIndex, this.indices.runsIndex]) {
      const listed = await ask(this.where, [dailyPattern(base)], () =>
        this.client.cat.indices({ index: dailyPattern(base), format: 'json', h: 'index', expand_wildcards: ['open', 'closed'] }),
      );
      expired.push(
        ...expiredIndices(
          base,
          (listed as unknown as Array<{ index?: string }>).map((i) => i.index ?? ''),
          keepDays,
          now,
        ).sort(),
      );
    }
    if (!dryRun) {
      // Exact names, never a wildcard: only what was listed goes.
      for (let i = 0; i < expired.length; i += 50) {
        const chunk = expired.slice(i, i + 50);
        await ask(this.where, chunk, () => this.client.indices.delete({ index: chunk }));
      }
    }
    return expired;
  }
}
