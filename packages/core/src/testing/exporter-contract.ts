// The contract every Exporter must meet, run against each adapter (core's built-ins here, Elasticsearch in
// @gather/exporter-es). `readBack` returns what the destination holds, so the suite checks real delivery.
import { describe, expect, it } from 'vitest';
import type { ErrorDocument, Exporter, GatherDocument, ResultDocument, RunSummaryDocument } from '../types.js';

export interface ExporterHarness {
  create(): Promise<Exporter> | Exporter;
  /** Everything delivered so far by exporters made by this harness's last `create`, in any order. */
  readBack(): Promise<GatherDocument[]>;
  /** Run summaries delivered so far, when the destination keeps them apart (optional). */
  readBackRuns?(): Promise<RunSummaryDocument[]>;
}

const base = {
  '@timestamp': '2026-01-01T00:00:00.000Z',
  run_id: 'contract-run',
  host: { hostname: 'vm-1' },
  agent: { version: '0.0.0' },
  bundle: { version: 'v1', sha256: 'a'.repeat(64) },
} as const;

export function sampleResult(index: number, value: unknown = index): ResultDocument {
  const type = Array.isArray(value) ? 'array' : value === null ? 'object' : (typeof value as ResultDocument['type']);
  return { kind: 'result', ...base, category: 'abuse', check: 'abc', duration_ms: 1, name: `n.${index}`, type, value };
}

export function sampleError(index: number): ErrorDocument {
  return { kind: 'error', ...base, category: 'analytics', check: 'xyz', reason: 'invalid_output', message: `bad ${index}`, exit_code: 1 };
}

export function sampleRunSummary(): RunSummaryDocument {
  return {
    kind: 'run',
    ...base,
    category: 'all',
    outcome: 'ok',
    checks: { run: 2, ok: 2, failed: 0, timed_out: 0 },
    results: 1,
    errors: 0,
    export: { delivered: 1, spooled: 0, failed: 0, retried: 0, dead_lettered: 0, dropped: 0, unreadable: 0, recovered: 0 },
    spooled: 0,
    bytes_fetched: 0,
    duration_ms: 1234,
    peak_rss_bytes: 50_000_000,
  };
}

export function exporterContract(name: string, harness: ExporterHarness): void {
  describe(`Exporter contract: ${name}`, () => {
    it('delivers results and errors, and counts them in flush()', async () => {
      const exporter = await harness.create();
      await exporter.exportResults([sampleResult(1), sampleResult(2, 'two'), sampleResult(3, true)]);
      await exporter.exportErrors([sampleError(1)]);
      const summary = await exporter.flush();
      expect(summary).toMatchObject({ delivered: 4, failed: 0 });
      await exporter.close();
      const delivered = await harness.readBack();
      expect(delivered).toHaveLength(4);
      expect(delivered.filter((d) => d.kind === 'error')).toMatchObject([{ reason: 'invalid_output', message: 'bad 1' }]);
      expect(
        delivered
          .filter((d) => d.kind === 'result')
          .map((d) => (d as ResultDocument).name)
          .sort(),
      ).toEqual(['n.1', 'n.2', 'n.3']);
    });

    it('keeps values of every type as they were', async () => {
      const exporter = await harness.create();
      const values = [true, 42.5, 'text "quoted"\n', ['a', 1], { nested: { k: [1, 2] } }];
      await exporter.exportResults(values.map((value, i) => sampleResult(i, value)));
      await exporter.close();
      const byName = new Map((await harness.readBack()).map((d) => [(d as ResultDocument).name, (d as ResultDocument).value]));
      for (const [i, value] of values.entries()) expect(byName.get(`n.${i}`)).toEqual(value);
    });

    it('exportRunSummary, when present, delivers the summary', async () => {
      const exporter = await harness.create();
      if (!exporter.exportRunSummary) {
        await exporter.close();
        return;
      }
      await exporter.exportResults([sampleResult(1)]);
      await exporter.exportRunSummary(sampleRunSummary());
      expect(await exporter.close()).toMatchObject({ delivered: 2, failed: 0 });
      if (harness.readBackRuns) expect(await harness.readBackRuns()).toEqual([sampleRunSummary()]);
    });

    it('accepts empty batches', async () => {
      const exporter = await harness.create();
      await exporter.exportResults([]);
      await exporter.exportErrors([]);
      expect((await exporter.close()).delivered).toBe(0);
    });
  });
}
