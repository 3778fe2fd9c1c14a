// The exporter told to stop (its `signal` aborted) while Elasticsearch hangs: the request in flight is
// aborted, everything not acknowledged goes to the spool, and nothing more is sent. The hung cluster is a
// tiny loopback server that accepts connections and never answers (it stands in for a hang only).
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sampleResult, sampleRunSummary } from '@gather/core/testing';
import { createEsExporter } from '../src/index.js';

let dir: string;
let server: Server;
const sockets = new Set<Socket>();
let requests = 0;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'gather-es-stop-'));
  requests = 0;
  server = createServer((socket) => {
    sockets.add(socket);
    socket.on('data', () => requests++);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
});
afterEach(async () => {
  for (const socket of sockets) socket.destroy();
  await new Promise((resolve) => server.close(resolve));
  await rm(dir, { recursive: true, force: true });
});

describe('stopping the exporter while Elasticsearch hangs', () => {
  it('aborts the request in flight and spools what was not acknowledged, long before the request timeout', async () => {
    const stop = new AbortController();
    const spoolDir = join(dir, 'spool');
    const exporter = createEsExporter({
      node: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      spoolDir,
      requestTimeoutMs: 600_000,
      signal: stop.signal,
    });
    await exporter.exportResults([sampleResult(1), sampleResult(2), sampleResult(3)]);
    const flushed = exporter.flush();
    while (requests === 0) await new Promise((resolve) => setTimeout(resolve, 20));
    const stoppedAt = Date.now();
    stop.abort();
    expect(await flushed).toMatchObject({ delivered: 0, spooled: 3, failed: 0 });
    expect(Date.now() - stoppedAt).toBeLessThan(5000);
    // After the stop nothing is sent: later documents go straight to the spool.
    const before = requests;
    await exporter.exportRunSummary(sampleRunSummary());
    expect(await exporter.close()).toMatchObject({ delivered: 0, spooled: 4 });
    expect(requests).toBe(before);
    const files = (await readdir(spoolDir)).filter((name) => name.endsWith('.ndjson'));
    const lines = (await Promise.all(files.map((name) => readFile(join(spoolDir, name), 'utf8')))).join('').trim().split('\n');
    expect(lines).toHaveLength(4);
    expect(await readdir(spoolDir)).not.toContain('spool.lock');
  });
});
