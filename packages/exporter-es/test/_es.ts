// Helpers of the integration tests: the real Elasticsearch URL, unique index names, reading back.
import { randomBytes } from 'node:crypto';
import { Client } from '@elastic/elasticsearch';
import type { GatherDocument } from '@gather/core';
import { templateName } from '../src/mapping.js';

/** GATHER_ES_URL, set by tools/vitest-services.ts (or by the user). Throws, never skips, when missing. */
export function esUrl(): string {
  const url = process.env.GATHER_ES_URL;
  if (!url) {
    throw new Error(
      'GATHER_ES_URL is not set: run the integration tests through vitest project "integration" (globalSetup tools/vitest-services.ts starts Elasticsearch), or run tools/services start elasticsearch and export the GATHER_ES_URL it prints',
    );
  }
  return url;
}

/** Unique lowercase names, so runs and test files never share an index. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
}

export function testClient(url = esUrl()): Client {
  return new Client({ node: url, requestTimeout: 60_000 });
}

/** Deletes indices, their daily indices and the templates the exporter installed for them. */
export async function dropIndices(client: Client, indices: string[]): Promise<void> {
  for (const index of indices) {
    await client.indices.delete({ index: [index, `${index}-2*`], ignore_unavailable: true, allow_no_indices: true }).catch(() => undefined);
    await client.indices.deleteIndexTemplate({ name: templateName(index) }).catch(() => undefined);
  }
}

/** The mappings of the (one) daily index behind the alias `index`. */
export async function mappingOf(client: Client, index: string): Promise<Record<string, any>> {
  return Object.values(await client.indices.getMapping({ index }))[0]!.mappings as Record<string, any>;
}

/** The daily indices of an index (none yet is no error: 0 documents). */
export function daily(index: string): string {
  return `${index}-2*`;
}

export async function count(client: Client, index: string): Promise<number> {
  await client.indices.refresh({ index: daily(index), allow_no_indices: true });
  return (await client.count({ index: daily(index), allow_no_indices: true })).count;
}

/** Every document of the indices, as indexed (with ids), typed value fields included. */
export async function readAll(client: Client, ...indices: string[]): Promise<Array<{ id: string; source: Record<string, unknown> }>> {
  const index = indices.map(daily);
  await client.indices.refresh({ index, allow_no_indices: true });
  const response = await client.search<Record<string, unknown>>({ index, size: 10_000, allow_no_indices: true, query: { match_all: {} } });
  return response.hits.hits.map((hit) => ({ id: hit._id!, source: hit._source! }));
}

/** A document as gather exported it: its source without the typed value fields the exporter adds. */
export function original(source: Record<string, unknown>): GatherDocument {
  return Object.fromEntries(Object.entries(source).filter(([key]) => !key.startsWith('value_'))) as unknown as GatherDocument;
}
