// The exporter's HTTP transport (node:http, no Elasticsearch client), against a tiny loopback server that
// records what it receives and answers like Elasticsearch (it stands in for request details only; the real
// Elasticsearch is in the integration tests).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ExportError } from '@gather/core';
import { sampleResult } from '@gather/core/testing';
import { createEsExporter } from '../src/index.js';
import { parseRetryAfter } from '../src/transport.js';

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: Buffer;
  at: number;
}

let server: Server;
let port: number;
const seen: Seen[] = [];
let product: string | undefined = 'Elasticsearch';
/** Answers for the next bulk requests, in order, before the server goes back to accepting everything. */
const refusals: Array<{ status: number; retryAfter: string }> = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, body: Buffer.concat(chunks), at: Date.now() });
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (product) headers['x-elastic-product'] = product;
      const refusal = req.url!.startsWith('/_bulk') ? refusals.shift() : undefined;
      if (refusal) {
        const error = { type: 'es_rejected_execution_exception', reason: 'busy' };
        res
          .writeHead(refusal.status, { ...headers, 'retry-after': refusal.retryAfter })
          .end(JSON.stringify({ error, status: refusal.status }));
      } else if (req.url!.startsWith('/_bulk')) {
        const actions = Buffer.concat(chunks).length > 0 ? 1 : 0;
        res
          .writeHead(200, headers)
          .end(JSON.stringify({ errors: false, items: Array.from({ length: actions }, () => ({ create: { status: 201 } })) }));
      } else
        res
          .writeHead(404, headers)
          .end(JSON.stringify({ error: { type: 'resource_not_found_exception', reason: 'not found' }, status: 404 }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});
afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
});
beforeEach(() => {
  seen.length = 0;
  refusals.length = 0;
  product = 'Elasticsearch';
});

const quick = { installTemplates: false, maxRetries: 0, requestTimeoutMs: 2000 } as const;

describe('requests to Elasticsearch', () => {
  it('send the credentials of the URL as basic auth, and NDJSON bulk bodies with the 8.x media types', async () => {
    const exporter = createEsExporter({ node: `http://gather:p%40ss@127.0.0.1:${port}`, ...quick });
    await exporter.exportResults([sampleResult(1)]);
    expect(await exporter.close()).toMatchObject({ delivered: 1, failed: 0 });
    const bulk = seen.find((s) => s.url.startsWith('/_bulk'))!;
    expect(bulk.method).toBe('POST');
    expect(bulk.headers.authorization).toBe(`Basic ${Buffer.from('gather:p@ss').toString('base64')}`);
    expect(bulk.headers['content-type']).toBe('application/vnd.elasticsearch+x-ndjson; compatible-with=8');
    expect(bulk.headers.accept).toBe('application/vnd.elasticsearch+json; compatible-with=8');
    expect(bulk.body.toString().split('\n')[0]).toMatch(
      /^\{"create":\{"_index":"gather-results-\d{4}\.\d{2}\.\d{2}","_id":"contract-run:abc:0"\}\}$/,
    );
  });

  it('send an API key given as { id, api_key } as ApiKey base64(id:api_key), and gzip bodies with compression', async () => {
    const exporter = createEsExporter({
      node: `http://127.0.0.1:${port}/`,
      auth: { apiKey: { id: 'kid', api_key: 'secret-key' } },
      compression: true,
      ...quick,
    });
    await exporter.exportResults([sampleResult(1)]);
    await exporter.close();
    const bulk = seen.find((s) => s.url.startsWith('/_bulk'))!;
    expect(bulk.headers.authorization).toBe(`ApiKey ${Buffer.from('kid:secret-key').toString('base64')}`);
    expect(bulk.headers['content-encoding']).toBe('gzip');
    expect(gunzipSync(bulk.body).toString()).toContain('"_id":"contract-run:abc:0"');
  });

  it('refuse a server that answers without x-elastic-product: Elasticsearch (a fatal error, documents kept)', async () => {
    product = undefined;
    const exporter = createEsExporter({ node: `http://127.0.0.1:${port}`, ...quick });
    await exporter.exportResults([sampleResult(1)]);
    const error = await exporter.flush().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ExportError);
    expect((error as Error).message).toMatch(
      /refused the request while sending documents \(the server is not Elasticsearch \(no x-elastic-product header\)\)/,
    );
    expect(exporter.summary()).toMatchObject({ delivered: 0, failed: 1 });
    await exporter.close().catch(() => undefined);
  });

  it('load no HTTP client library: neither undici (Node bundles one behind the ES import of node:http) nor @elastic/*', () => {
    const dist = join(__dirname, '../dist/index.js');
    const script = `
      const { createEsExporter } = await import(${JSON.stringify(dist)});
      const e = createEsExporter({ node: 'http://127.0.0.1:1', installTemplates: false, maxRetries: 0 });
      await e.exportResults([]); await e.close();
      const { createRequire } = await import('node:module');
      const loaded = process.moduleLoadList.filter((m) => /undici/.test(m));
      const cjs = Object.keys(createRequire(import.meta.url).cache).filter((f) => /@elastic|undici/.test(f));
      console.log(JSON.stringify([...loaded, ...cjs]));`;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(JSON.parse(out.trim())).toEqual([]);
  });
});

describe('Retry-After (a proxy or hosted service in front of Elasticsearch may send one)', () => {
  const bulks = () => seen.filter((request) => request.url.startsWith('/_bulk'));

  it('is read as delay-seconds or an HTTP-date, and honoured for 15 minutes at most', () => {
    const now = Date.parse('2026-12-02T10:00:00Z');
    expect(parseRetryAfter('2', now)).toBe(2000);
    expect(parseRetryAfter(' 0 ', now)).toBe(0);
    expect(parseRetryAfter('Wed, 02 Dec 2026 10:00:03 GMT', now)).toBe(3000);
    expect(parseRetryAfter('Wed, 02 Dec 2026 09:00:00 GMT', now)).toBe(0);
    expect(parseRetryAfter('86400', now)).toBe(15 * 60_000); // a day: honoured for 15 minutes at most
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
  });

  it('on a 429, the retry waits as long as the server asked, not the (shorter) backoff', async () => {
    refusals.push({ status: 429, retryAfter: '1' });
    const exporter = createEsExporter({ node: `http://127.0.0.1:${port}`, installTemplates: false, maxRetries: 2, retryBaseDelayMs: 1 });
    await exporter.exportResults([sampleResult(1)]);
    expect(await exporter.close()).toMatchObject({ delivered: 1, failed: 0, spooled: 0 });
    const [refused, retried] = bulks();
    expect(bulks()).toHaveLength(2);
    expect(retried!.at - refused!.at).toBeGreaterThanOrEqual(990);
  });

  it('on a 503 asking for longer than the longest backoff, spools at once and sends nothing more until then', async () => {
    refusals.push({ status: 503, retryAfter: '120' });
    const spoolDir = mkdtempSync(join(tmpdir(), 'gather-retry-after-'));
    try {
      const exporter = createEsExporter({ node: `http://127.0.0.1:${port}`, installTemplates: false, spoolDir, retryMaxDelayMs: 5000 });
      const started = Date.now();
      await exporter.exportResults([sampleResult(1)]);
      // The closing flush tries a spool again at once, unless the server asked to wait (it did).
      expect(await exporter.close()).toMatchObject({ delivered: 0, failed: 0, spooled: 1 });
      expect(Date.now() - started).toBeLessThan(5000);
      expect(bulks()).toHaveLength(1);
    } finally {
      rmSync(spoolDir, { recursive: true, force: true });
    }
  });
});
