import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  createFileExporter,
  createFileFetcher,
  createMemoryExporter,
  createStdoutExporter,
  type GatherDocument,
} from '../src/index.js';
import { exporterContract, sampleResult } from '../src/testing/exporter-contract.js';
import { fetcherContract } from '../src/testing/fetcher-contract.js';
import { tempDir, writeTemp } from './_fixtures.js';

const parseNdjson = (text: string): GatherDocument[] =>
  text
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line));

let filePath = '';
exporterContract('file (NDJSON)', {
  create: () => createFileExporter({ path: (filePath = join(tempDir(), 'out.ndjson')) }),
  readBack: async () => parseNdjson(readFileSync(filePath, 'utf8')),
});

let captured = '';
exporterContract('stdout (NDJSON)', {
  create: () => {
    captured = '';
    const stream = new PassThrough();
    stream.on('data', (chunk) => (captured += chunk));
    return createStdoutExporter({ stream });
  },
  readBack: async () => parseNdjson(captured),
});

let memory = createMemoryExporter();
exporterContract('memory', {
  create: () => (memory = createMemoryExporter()),
  readBack: async () => [...memory.results, ...memory.errors],
});

fetcherContract('file', {
  withBundle: (bundle) => createFileFetcher({ path: writeTemp('check.tar', bundle) }),
  missing: () => createFileFetcher({ path: join(tempDir(), 'absent.tar') }),
});

describe('file adapters', () => {
  it('the NDJSON and memory exporters export a run summary document as one more line, after the results', async () => {
    const summary = {
      kind: 'run' as const,
      '@timestamp': '2026-01-01T00:00:00.000Z',
      run_id: 'r1',
      host: { hostname: 'h' },
      agent: { version: '1.0.0' },
      category: 'abuse' as const,
      outcome: 'ok' as const,
      checks: { run: 1, ok: 1, failed: 0, timed_out: 0 },
      results: 1,
      errors: 0,
      export: { delivered: 1, spooled: 0, failed: 0, retried: 0, dead_lettered: 0, dropped: 0, unreadable: 0, recovered: 0 },
      spooled: 0,
      bytes_fetched: 0,
      duration_ms: 5,
      peak_rss_bytes: 1,
    };
    const path = join(tempDir(), 'out.ndjson');
    const file = createFileExporter({ path });
    await file.exportResults([sampleResult(1)]);
    await file.exportRunSummary!(summary);
    expect(await file.close()).toMatchObject({ delivered: 2 });
    expect(parseNdjson(readFileSync(path, 'utf8')).map((d) => d.kind)).toEqual(['result', 'run']);
    const memory = createMemoryExporter();
    await memory.exportRunSummary!(summary);
    expect(memory.runs).toEqual([summary]);
  });

  it('the file exporter writes mode 0600 and appends when asked', async () => {
    const path = join(tempDir(), 'out.ndjson');
    for (let i = 0; i < 2; i++) {
      const exporter = createFileExporter({ path, append: true });
      await exporter.exportResults([sampleResult(i)]);
      await exporter.close();
    }
    expect(parseNdjson(readFileSync(path, 'utf8'))).toHaveLength(2);
    const { statSync } = await import('node:fs');
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });

  // The open fails asynchronously: before close() (20 ms later) or while it waits for the stream (at once,
  // which a loaded CI machine also produced with the 20 ms, and which then rejected with the bare ENOENT).
  it.each([20, 0])('the file exporter fails clearly when its directory does not exist (closed after %i ms)', async (waitMs) => {
    const exporter = createFileExporter({ path: '/nonexistent-dir/out.ndjson' });
    await expect(
      (async () => {
        await exporter.exportResults([sampleResult(1)]);
        if (waitMs > 0) await new Promise((resolve) => setTimeout(resolve, waitMs));
        await exporter.close();
      })(),
    ).rejects.toThrow(/^\[gather\] \[file exporter\] Writing NDJSON failed: .*ENOENT/);
  });

  it('options are validated with a message that says what to pass', () => {
    expect(() => createFileFetcher({ path: '' })).toThrow(ConfigError);
    expect(() => createFileExporter({ path: '' })).toThrow(/Pass --out <file> or set GATHER_OUT/);
  });
});
