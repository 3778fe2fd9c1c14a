// The depth limit of check results (core's MAX_VALUE_DEPTH) is one the real Elasticsearch accepts: a value
// parsed from check output at the limit is indexed, with its flattened field for objects; and the run summary's
// containment field is mapped.
import type { Client } from '@elastic/elasticsearch';
import { MAX_VALUE_DEPTH, parseCheckOutput, type ResultDocument, type RunSummaryDocument } from '@gather/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sampleResult, sampleRunSummary } from '@gather/core/testing';
import { createEsExporter } from '../src/index.js';
import { dropIndices, esUrl, readAll, testClient, uniqueName } from './_es.js';

const url = esUrl();
let client: Client;
const base = uniqueName('gather-depth');
const names = { resultsIndex: `${base}-results`, errorsIndex: `${base}-errors`, runsIndex: `${base}-runs` };

beforeAll(() => {
  client = testClient(url);
});

afterAll(async () => {
  await dropIndices(client, Object.values(names));
  await client.close();
});

describe(`values nested ${MAX_VALUE_DEPTH} levels deep`, () => {
  it('are accepted by the check output parser and indexed by Elasticsearch, objects with their flattened field', async () => {
    const object = `${'{"k":'.repeat(MAX_VALUE_DEPTH)}"leaf"${'}'.repeat(MAX_VALUE_DEPTH)}`;
    const array = `${'['.repeat(MAX_VALUE_DEPTH)}"leaf"${']'.repeat(MAX_VALUE_DEPTH)}`;
    const parsed = parseCheckOutput(
      `{"name":"deep.object","type":"object","value":${object}}\n{"name":"deep.array","type":"array","value":${array}}\n`,
    );
    expect(parsed.problemCount).toBe(0);
    expect(parsed.results).toHaveLength(2);

    const exporter = createEsExporter({ node: url, ...names, indexSettings: { number_of_replicas: 0 } });
    const docs: ResultDocument[] = parsed.results.map((result, i) => ({ ...sampleResult(i), run_id: 'depth-limit', ...result }));
    await exporter.exportResults(docs);
    const summary: RunSummaryDocument = {
      ...sampleRunSummary(),
      run_id: 'depth-limit',
      containment: { mechanism: 'cgroup', killed_after_exit: 2 },
    };
    await exporter.exportRunSummary(summary);
    expect(await exporter.close()).toMatchObject({ delivered: 3, failed: 0 });

    const indexed = await readAll(client, names.resultsIndex);
    const byName = new Map(indexed.map((d) => [d.source.name, d.source]));
    expect(byName.get('deep.object')).toMatchObject({ value: JSON.parse(object), value_json: object, value_object: JSON.parse(object) });
    expect(byName.get('deep.array')).toMatchObject({ value: JSON.parse(array), value_json: array });
    // The flattened field makes the deepest leaf searchable.
    await client.indices.refresh({ index: names.resultsIndex });
    const hits = await client.search({
      index: names.resultsIndex,
      query: { term: { [`value_object.${Array(MAX_VALUE_DEPTH).fill('k').join('.')}`]: 'leaf' } },
    });
    expect(hits.hits.hits).toHaveLength(1);

    const [run] = await readAll(client, names.runsIndex);
    expect(run!.source).toMatchObject({ containment: { mechanism: 'cgroup', killed_after_exit: 2 } });
    // The runs index is a daily index behind the alias `names.runsIndex`.
    const mapping = Object.values(await client.indices.getMapping({ index: names.runsIndex }))[0]!.mappings;
    expect(mapping.properties?.containment).toEqual({
      properties: { mechanism: { type: 'keyword', ignore_above: 1024 }, killed_after_exit: { type: 'long' } },
    });
  });

  it('one level more is refused by the parser, before it reaches any exporter', () => {
    const tooDeep = `${'['.repeat(MAX_VALUE_DEPTH + 1)}1${']'.repeat(MAX_VALUE_DEPTH + 1)}`;
    expect(parseCheckOutput(`{"name":"x","type":"array","value":${tooDeep}}`).problems).toEqual([
      expect.stringMatching(/nested deeper than 20 levels/),
    ]);
  });
});
