// Failure paths that need no Elasticsearch: bad options, a node nobody listens on, and a credentials
// rejection. The real Elasticsearch of tools/services runs without security, so the 401 comes from a tiny
// local HTTP server that answers every request like a secured Elasticsearch refusing a key (status 401,
// x-elastic-product header, security_exception body): it stands in for the rejection only.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError, ExportError } from '@gather/core';
import { sampleError, sampleResult, sampleRunSummary } from '@gather/core/testing';
import { createEsExporter, type EsExporterOptions } from '../src/index.js';

const SECRET = 'S3cr3t-pa55word-do-not-print';
const API_KEY = 'QUtJQV9hcGlfa2V5X3NlY3JldDpzdXBlcnNlY3JldA==';
const fast: Partial<EsExporterOptions> = { maxRetries: 1, retryBaseDelayMs: 1, retryMaxDelayMs: 2, requestTimeoutMs: 2000 };

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function failure(promise: Promise<unknown>): Promise<ExportError> {
  try {
    await promise;
  } catch (error) {
    return error as ExportError;
  }
  throw new Error('expected a rejection');
}

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'gather-es-fail-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('options', () => {
  it.each([
    [{}, /\[gather\] \[exporter-es\] Missing option "node"/],
    [{ node: 'not a url' }, /must be an http\(s\) URL/],
    [{ node: 'http://127.0.0.1:9200', resultsIndex: 'Gather_Results' }, /"resultsIndex" is not a valid index name/],
    [{ node: 'http://127.0.0.1:9200', errorsIndex: '_errors' }, /"errorsIndex" is not a valid index name/],
    [{ node: 'http://127.0.0.1:9200', runsIndex: 'Runs' }, /"runsIndex" is not a valid index name/],
    [
      { node: 'http://127.0.0.1:9200', runsIndex: 'gather-results' },
      /Options "resultsIndex" and "runsIndex" name the same index "gather-results"/,
    ],
    [{ node: 'http://127.0.0.1:9200', errorsIndex: 'x', runsIndex: 'x' }, /Options "errorsIndex" and "runsIndex" name the same index "x"/],
    [{ node: 'http://127.0.0.1:9200', maxInFlight: 0 }, /"maxInFlight" must be a number >= 1/],
    [
      { node: 'http://127.0.0.1:9200', retryBaseDelayMs: 3_600_000 },
      /"retryBaseDelayMs" must be a number of milliseconds from 0 to 60000 \(got 3600000\)/,
    ],
    [{ node: 'http://127.0.0.1:9200', retryMaxDelayMs: -1 }, /"retryMaxDelayMs" must be a number of milliseconds from 0 to 600000/],
    [{ node: 'http://127.0.0.1:9200', requestTimeoutMs: 2 ** 31 }, /"requestTimeoutMs" must be a number of milliseconds from 1 to 3600000/],
    [{ node: 'http://127.0.0.1:9200', probeIntervalMs: NaN }, /"probeIntervalMs" must be a number of milliseconds from 0 to 3600000/],
    [{ node: 'http://127.0.0.1:9200', auth: { user: 'x' } }, /"auth" must be \{ apiKey \}/],
  ])('refuses %j with a ConfigError saying what to fix', (options, message) => {
    expect(() => createEsExporter(options as EsExporterOptions)).toThrow(ConfigError);
    expect(() => createEsExporter(options as EsExporterOptions)).toThrow(message);
  });

  it('never shows the password of a URL in a configuration error', () => {
    expect(() => createEsExporter({ node: `ftp://elastic:${SECRET}@host` })).toThrow(/elastic:\[redacted\]@host/);
  });
});

describe('Elasticsearch unreachable', () => {
  it('without a spool: counts the documents failed and throws an ExportError saying how to fix it, no credential in it', async () => {
    const port = await closedPort();
    const logs: string[] = [];
    const exporter = createEsExporter({ node: `http://elastic:${SECRET}@127.0.0.1:${port}`, ...fast, log: (l) => logs.push(l) });
    await exporter.exportResults([sampleResult(1), sampleResult(2)]);
    const error = await failure(exporter.flush());
    expect(error).toBeInstanceOf(ExportError);
    expect(error.message).toMatch(
      /^\[gather\] \[exporter-es\] 2 documents could not be delivered to Elasticsearch at http:\/\/127\.0\.0\.1:\d+/,
    );
    expect(error.message).toMatch(/ECONNREFUSED.*set spoolDir/);
    expect(exporter.summary()).toMatchObject({ delivered: 0, spooled: 0, failed: 2 });
    expect(logs.join('\n')).toMatch(/unavailable/);
    for (const text of [error.message, String(error.stack), ...logs]) expect(text).not.toContain(SECRET);
    await exporter.close();
  });

  it('with a spool: keeps every document on disk, counts them spooled, and flush() does not throw', async () => {
    const port = await closedPort();
    const exporter = createEsExporter({ node: `http://127.0.0.1:${port}`, spoolDir: dir, maxBatchDocs: 2, ...fast });
    await exporter.exportResults([sampleResult(1), sampleResult(2), sampleResult(3)]);
    await exporter.exportErrors([sampleError(1)]);
    await exporter.exportRunSummary({ ...sampleRunSummary(), outcome: 'spooled' });
    expect(await exporter.flush()).toMatchObject({ delivered: 0, spooled: 5, failed: 0 });
    const files = (await readdir(dir)).filter((f) => f.endsWith('.ndjson'));
    expect(files).toHaveLength(1);
    const lines = (await readFile(join(dir, files[0]!), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines.map((l) => l.id)).toEqual([
      'contract-run:abc:0',
      'contract-run:abc:1',
      'contract-run:abc:2',
      'contract-run:xyz:error:0',
      'contract-run:run',
    ]);
    expect(lines[0]).toMatchObject({
      index: expect.stringMatching(/^gather-results-\d{4}\.\d{2}\.\d{2}$/),
      doc: { name: 'n.1', value: 1, value_number: 1 },
    });
    expect(lines[3]).toMatchObject({
      index: expect.stringMatching(/^gather-errors-\d{4}\.\d{2}\.\d{2}$/),
      doc: { kind: 'error', message: 'bad 1' },
    });
    expect(lines[4]).toMatchObject({
      index: expect.stringMatching(/^gather-runs-\d{4}\.\d{2}\.\d{2}$/),
      doc: { kind: 'run', outcome: 'spooled', duration_ms: 1234 },
    });
    // Still down at close: nothing lost, nothing thrown.
    expect(await exporter.close()).toMatchObject({ spooled: 5, failed: 0 });
  });
});

describe('credentials rejected (HTTP 401)', () => {
  let server: Server;
  let url: string;
  const seen: Array<string | undefined> = [];
  beforeAll(async () => {
    server = createServer((req, res) => {
      seen.push(req.headers.authorization);
      req.resume();
      res.writeHead(401, { 'content-type': 'application/json', 'x-elastic-product': 'Elasticsearch', 'www-authenticate': 'ApiKey' });
      res.end(
        JSON.stringify({ error: { type: 'security_exception', reason: 'unable to authenticate with provided credentials' }, status: 401 }),
      );
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  it('fails with a clear error naming the auth option, keeps the documents in the spool, and never prints the key', async () => {
    const logs: string[] = [];
    const exporter = createEsExporter({ node: url, auth: { apiKey: API_KEY }, spoolDir: dir, ...fast, log: (l) => logs.push(l) });
    await exporter.exportResults([sampleResult(1)]);
    await exporter.exportErrors([{ ...sampleError(1), message: `the key was ${API_KEY}` }]);
    await exporter.exportRunSummary({ ...sampleRunSummary(), outcome: 'export_failed', message: `export failed with key ${API_KEY}` });
    const error = await failure(exporter.flush());
    expect(error).toBeInstanceOf(ExportError);
    expect(error.message).toContain('[gather] [exporter-es] Elasticsearch at ' + url + ' rejected the credentials');
    expect(error.message).toContain('HTTP 401 security_exception: unable to authenticate with provided credentials');
    expect(error.message).toMatch(/Check the auth option \(apiKey, username\/password or bearer token\)/);
    expect(error.message).toContain(`kept in the spool (${dir})`);
    expect(seen).toContain(`ApiKey ${API_KEY}`);
    expect(exporter.summary()).toMatchObject({ delivered: 0, spooled: 3, failed: 0 });
    // The error document's and the run summary's messages were redacted before they were spooled.
    const [file] = (await readdir(dir)).filter((f) => f.endsWith('.ndjson'));
    const spooled = await readFile(join(dir, file!), 'utf8');
    expect(spooled).toContain('the key was [redacted]');
    expect(spooled).toContain('export failed with key [redacted]');
    for (const text of [error.message, String(error.stack), spooled, ...logs]) expect(text).not.toContain(API_KEY);
    // The failure is reported again by close (the agent exits "export failed").
    await expect(exporter.close()).rejects.toThrow(/rejected the credentials/);
  });

  it('with username/password and no spool: counts the documents failed and never prints the password', async () => {
    const exporter = createEsExporter({ node: url, auth: { username: 'elastic', password: SECRET }, ...fast });
    await exporter.exportResults([sampleResult(1), sampleResult(2)]);
    const error = await failure(exporter.flush());
    expect(error.message).toMatch(/rejected the credentials/);
    expect(exporter.summary()).toMatchObject({ delivered: 0, failed: 2 });
    expect(seen.at(-1)).toBe(`Basic ${Buffer.from(`elastic:${SECRET}`).toString('base64')}`);
    expect(error.message).not.toContain(SECRET);
    expect(error.message).not.toContain(Buffer.from(`elastic:${SECRET}`).toString('base64'));
    await exporter.close().catch(() => undefined);
  });
});
