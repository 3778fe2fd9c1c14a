// Index setup against the real Elasticsearch of tools/services: a run remembers in its state directory which
// templates it installed, so the next run with the same settings makes one template request instead of one
// per index and template, and still reinstalls a template an operator deleted. The requests are counted by
// a loopback proxy that forwards every request to the real Elasticsearch unchanged (it answers nothing itself).
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from '@elastic/elasticsearch';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sampleResult, sampleRunSummary } from '@gather/core/testing';
import { createEsExporter } from '../src/index.js';
import { templateName } from '../src/mapping.js';
import { count, dropIndices, esUrl, testClient, uniqueName } from './_es.js';

const target = new URL(esUrl());
let client: Client;
let proxy: Server;
let proxyUrl: string;
const seen: string[] = [];
const created: string[] = [];
let dir: string;

beforeAll(async () => {
  client = testClient();
  dir = await mkdtemp(join(tmpdir(), 'gather-es-templates-'));
  await mkdir(join(dir, 'state'));
  await mkdir(join(dir, 'state-priority'));
  proxy = createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    const upstream = request(
      { hostname: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((resolve) => proxy.close(resolve));
  await dropIndices(client, created);
  await rm(dir, { recursive: true, force: true });
  await client.close();
});

/** The template and index-setup requests of one run (everything but the documents' bulk requests). */
function setupRequests(from: number): string[] {
  return seen.slice(from).filter((line) => line.includes('_index_template') || line.includes('/_settings'));
}

describe('index templates across runs', () => {
  it('a steady-state run makes one template request, and a template an operator deleted is installed again', async () => {
    const base = uniqueName('gather-it-tpl');
    const names = {
      resultsIndex: `${base}-results`,
      errorsIndex: `${base}-errors`,
      runsIndex: `${base}-runs`,
      latestIndex: `${base}-latest`,
      hostsIndex: `${base}-hosts`,
    };
    created.push(...Object.values(names));
    const stateDir = join(dir, 'state');
    const run = async (runId: string) => {
      const from = seen.length;
      const exporter = createEsExporter({
        node: proxyUrl,
        ...names,
        currentState: true,
        stateDir,
        spoolDir: join(dir, 'spool'),
        indexSettings: { number_of_replicas: 0 },
      });
      await exporter.exportResults([{ ...sampleResult(1), run_id: runId }]);
      await exporter.exportRunSummary({ ...sampleRunSummary(), run_id: runId });
      expect(await exporter.close()).toMatchObject({ delivered: 2, spooled: 0, failed: 0 });
      return setupRequests(from);
    };

    // First run: every index checked and every template installed (3 _settings reads, 5 template reads, 5 PUTs).
    const first = await run('tpl-run-1');
    expect(first.filter((l) => l.startsWith('PUT /_index_template/'))).toHaveLength(5);
    expect(first.filter((l) => l.includes('/_settings'))).toHaveLength(3);

    // Steady state: one request reading the installed templates' hashes, nothing else.
    const second = await run('tpl-run-2');
    expect(second).toHaveLength(1);
    expect(second[0]).toMatch(/^GET \/_index_template\/\*-gather\?/);

    // An operator deletes the results template: the next run sees it missing and installs it again.
    await client.indices.deleteIndexTemplate({ name: templateName(names.resultsIndex) });
    const third = await run('tpl-run-3');
    expect(third.filter((l) => l.startsWith('PUT /_index_template/'))).toEqual([
      `PUT /_index_template/${templateName(names.resultsIndex)}`,
    ]);
    const { index_templates: templates } = await client.indices.getIndexTemplate({ name: templateName(names.resultsIndex) });
    expect(templates[0]!.index_template._meta).toMatchObject({ managed_by: '@gather/exporter-es' });

    // And steady again afterwards; every document of the three runs is in its index.
    expect(await run('tpl-run-4')).toHaveLength(1);
    expect(await count(client, names.resultsIndex)).toBe(4);
    expect(await count(client, names.runsIndex)).toBe(4);
  });

  it('other settings (another template priority) are not taken for installed: every template is checked again', async () => {
    const base = uniqueName('gather-it-tpl');
    const names = { resultsIndex: `${base}-results`, errorsIndex: `${base}-errors`, runsIndex: `${base}-runs` };
    created.push(...Object.values(names));
    const stateDir = join(dir, 'state-priority');
    const run = async (templatePriority: number) => {
      const from = seen.length;
      const exporter = createEsExporter({ node: proxyUrl, ...names, stateDir, templatePriority, indexSettings: { number_of_replicas: 0 } });
      await exporter.exportResults([{ ...sampleResult(1), run_id: `prio-${templatePriority}` }]);
      await exporter.close();
      return setupRequests(from);
    };
    await run(200);
    const changed = await run(300);
    expect(changed.filter((l) => l.startsWith('PUT /_index_template/'))).toHaveLength(3);
    const { index_templates: templates } = await client.indices.getIndexTemplate({ name: templateName(names.resultsIndex) });
    expect(templates[0]!.index_template.priority).toBe(300);
  });
});
