// elasticsearch.shards / .replicas against the real Elasticsearch of tools/services: an agent run installs
// templates carrying them, and the daily index it creates has them.
import { randomBytes } from 'node:crypto';
import { Client } from '@elastic/elasticsearch';
import { afterAll, describe, expect, it } from 'vitest';
import { agent, cleanEnv, makeBundleFile, tempDir } from './_helpers.js';

const url = process.env.GATHER_ES_URL;
if (!url) throw new Error('GATHER_ES_URL is not set: run through vitest (globalSetup starts Elasticsearch) or export it');

const id = `${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
const indices = {
  GATHER_ES_RESULTS_INDEX: `gather-agent-shards-results-${id}`,
  GATHER_ES_ERRORS_INDEX: `gather-agent-shards-errors-${id}`,
  GATHER_ES_RUNS_INDEX: `gather-agent-shards-runs-${id}`,
  GATHER_ES_LATEST_INDEX: `gather-agent-shards-latest-${id}`,
  GATHER_ES_HOSTS_INDEX: `gather-agent-shards-hosts-${id}`,
};
const es = new Client({ node: url, requestTimeout: 60_000 });

afterAll(async () => {
  for (const index of Object.values(indices)) {
    await es.indices.delete({ index: [index, `${index}-2*`], ignore_unavailable: true, allow_no_indices: true }).catch(() => undefined);
    await es.indices.deleteIndexTemplate({ name: `${index}-gather` }).catch(() => undefined);
  }
  await es.close();
});

describe('shards and replicas from the agent configuration', () => {
  it('GATHER_ES_SHARDS / GATHER_ES_REPLICAS reach the templates and the indices they create', async () => {
    const fixture = await makeBundleFile({ 'abuse/run-abc': 'output miner.found boolean false' });
    const result = await agent(
      [
        'run',
        '--bundle',
        fixture.bundlePath,
        '--public-key',
        fixture.publicKeyPath,
        '--exporter',
        'elasticsearch',
        '--es-url',
        url,
        '--category',
        'abuse',
      ],
      {
        env: cleanEnv({ ...indices, GATHER_ES_SHARDS: '2', GATHER_ES_REPLICAS: '0', GATHER_SPOOL_DIR: tempDir('gather-spool-') }),
      },
    );
    expect(result.code, result.stderr).toBe(0);

    for (const index of Object.values(indices)) {
      const {
        index_templates: [template],
      } = await es.indices.getIndexTemplate({ name: `${index}-gather` });
      const settings = template!.index_template.template!.settings as { index?: Record<string, unknown> };
      // Naming replicas replaces the default auto_expand_replicas.
      expect(settings.index, index).toMatchObject({ number_of_shards: '2', number_of_replicas: '0' });
      expect(settings.index?.auto_expand_replicas, index).toBeUndefined();
    }
    const created = await es.indices.getSettings({ index: `${indices.GATHER_ES_RESULTS_INDEX}-2*` });
    const daily = Object.values(created);
    expect(daily).toHaveLength(1);
    expect(daily[0]!.settings?.index).toMatchObject({ number_of_shards: '2', number_of_replicas: '0' });
  });
});
