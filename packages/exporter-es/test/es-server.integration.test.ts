// Acceptance test of the local Elasticsearch server (tools/services, tools/elasticsearch) with the real
// @elastic/elasticsearch 8.x client. Runs against GATHER_ES_URL, which tools/vitest-services.ts sets (or a
// user's own Elasticsearch when GATHER_ES_URL is already set). Fails, never skips, when it is missing.
import { Client } from '@elastic/elasticsearch';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

function requireEnv(name: string): string {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set: run the integration tests through tools/vitest-services.ts (vitest project "integration")`);
  }
  return value;
}

const esUrl = requireEnv('GATHER_ES_URL');
// The major version tools/services starts: 8 by default, 9 with GATHER_ES_MAJOR=9 (tools/elasticsearch9).
const esMajor = process.env.GATHER_ES_MAJOR ?? '8';
const suffix = `${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
const template = `gather-it-template-${suffix}`;
const indexPrefix = `gather-it-${suffix}`;
const index = `${indexPrefix}-docs`;
const DOCS = 10_000;

let client: Client;

beforeAll(() => {
  client = new Client({ node: esUrl, requestTimeout: 60_000 });
});

afterAll(async () => {
  // by exact name: Elasticsearch 8 refuses wildcard deletes (action.destructive_requires_name defaults to true)
  await client.indices.delete({ index, ignore_unavailable: true }).catch(() => undefined);
  await client.indices.deleteIndexTemplate({ name: template }).catch(() => undefined);
  await client.close();
});

describe('local Elasticsearch server', () => {
  test(`GET / answers 200 with x-elastic-product: Elasticsearch and an ${esMajor}.x version`, async () => {
    const response = await fetch(`${esUrl}/`);
    expect(response.status).toBe(200);
    expect(response.headers.get('x-elastic-product')).toBe('Elasticsearch');
    const body = (await response.json()) as { version: { number: string }; tagline: string };
    expect(body.version.number).toMatch(new RegExp(`^${esMajor}\\.\\d+\\.\\d+`));
    expect(body.tagline).toBe('You Know, for Search');
  });

  test('client.info() and ping()', async () => {
    const info = await client.info();
    expect(info.version.number.split('.')[0]).toBe(esMajor);
    expect(info.cluster_uuid).toMatch(/\S/);
    expect(await client.ping()).toBe(true);
  });

  test('index template, bulk of 10k docs, refresh, count, search', async () => {
    await client.indices.putIndexTemplate({
      name: template,
      index_patterns: [`${indexPrefix}-*`],
      template: {
        settings: { number_of_shards: 1, number_of_replicas: 0 },
        mappings: {
          dynamic: 'strict',
          properties: {
            '@timestamp': { type: 'date' },
            seq: { type: 'long' },
            status: { type: 'keyword' },
            message: { type: 'text' },
          },
        },
      },
    });

    const statuses = ['ok', 'failed', 'skipped', 'error'] as const;
    const operations: object[] = [];
    const start = Date.parse('2026-01-01T00:00:00Z');
    for (let i = 0; i < DOCS; i++) {
      operations.push({ index: { _index: index, _id: String(i) } });
      operations.push({
        '@timestamp': new Date(start + i * 1000).toISOString(),
        seq: i,
        status: statuses[i % statuses.length],
        message: `check number ${i} finished with ${statuses[i % statuses.length]}`,
      });
    }
    const bulk = await client.bulk({ operations });
    expect(bulk.errors).toBe(false);
    expect(bulk.items).toHaveLength(DOCS);

    // the template applied: strict mapping from it
    const mapping = await client.indices.getMapping({ index });
    expect(mapping[index]?.mappings.dynamic).toBe('strict');
    expect(mapping[index]?.mappings.properties?.status).toEqual({ type: 'keyword' });

    await client.indices.refresh({ index });
    const count = await client.count({ index });
    expect(count.count).toBe(DOCS);

    const search = await client.search<{ seq: number; status: string }>({
      index,
      query: { bool: { filter: [{ term: { status: 'failed' } }, { range: { seq: { gte: 5000 } } }] } },
      sort: [{ seq: 'asc' }],
      size: 3,
      track_total_hits: true,
      aggs: { by_status: { terms: { field: 'status' } } },
    });
    expect(search.hits.total).toEqual({ value: 1250, relation: 'eq' });
    expect(search.hits.hits.map((hit) => hit._source?.seq)).toEqual([5001, 5005, 5009]);

    const fullText = await client.search({ index, query: { match: { message: 'failed' } }, size: 0, track_total_hits: true });
    expect(fullText.hits.total).toEqual({ value: 2500, relation: 'eq' });

    // a document the strict template mapping rejects is a per-item error, not a request failure
    const rejected = await client.bulk({ operations: [{ index: { _index: index } }, { unknown_field: 1 }] });
    expect(rejected.errors).toBe(true);
    expect(rejected.items[0]?.index?.status).toBe(400);
  });
});
