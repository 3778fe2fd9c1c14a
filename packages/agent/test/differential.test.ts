// Differential results against an in-memory exporter: what each run exports, and when the state is kept.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createMemoryExporter, type ErrorDocument, type ExportSummary, type ResultDocument } from '@gather/core';
import { describe, expect, it } from 'vitest';
import { DifferentialResults } from '../src/differential.js';
import { tempDir } from './_helpers.js';

const base = { host: { hostname: 'vm-1', id: 'id-1' }, agent: { version: '1.0.0' }, duration_ms: 1 } as const;

function result(name: string, value: unknown, check = 'abc', version = 'v1', category: 'abuse' | 'analytics' = 'abuse'): ResultDocument {
  const type = typeof value === 'boolean' ? 'boolean' : typeof value === 'number' ? 'number' : 'string';
  return {
    kind: 'result',
    '@timestamp': '2026-12-01T00:00:00.000Z',
    run_id: 'r',
    ...base,
    bundle: { version, sha256: 's' },
    category,
    check,
    name,
    type,
    value,
  };
}

function error(check: string): ErrorDocument {
  return {
    kind: 'error',
    '@timestamp': '2026-12-01T00:00:00.000Z',
    run_id: 'r',
    ...base,
    category: 'abuse',
    check,
    reason: 'timeout',
    message: 'timed out',
  };
}

interface RunInput {
  results: ResultDocument[];
  errors?: ErrorDocument[];
  totals?: Partial<ExportSummary>;
  now?: string;
  mode?: 'differential' | 'snapshot';
}

async function runWith(stateDir: string, input: RunInput) {
  const memory = createMemoryExporter();
  const diff = new DifferentialResults({
    stateDir,
    mode: input.mode ?? 'differential',
    snapshotIntervalSec: 3600,
    now: () => new Date(input.now ?? '2026-12-01T00:00:00.000Z'),
  });
  const exporter = diff.wrap(memory);
  // As core does it: per check, results then its error record; a flush at the end.
  const checks = [...new Set([...input.results.map((r) => r.check), ...(input.errors ?? []).map((e) => e.check!)])];
  for (const check of checks) {
    const own = input.results.filter((r) => r.check === check);
    if (own.length > 0) await exporter.exportResults(own);
    const errors = (input.errors ?? []).filter((e) => e.check === check);
    if (errors.length > 0) await exporter.exportErrors(errors);
  }
  const totals = { ...(await exporter.close()), ...input.totals };
  const state = await diff.commit(totals, false);
  const changes = memory.results.map((r) => `${r.change}:${r.name}=${JSON.stringify(r.value)}`);
  return { changes, counts: diff.summaryFields().changes!, state, errors: memory.errors };
}

describe('differential results', () => {
  it('export a snapshot first, then only additions, changes and removals (with the last value)', async () => {
    const dir = tempDir();
    const first = await runWith(dir, { results: [result('a', 1), result('b', true), result('c', 'x', 'def')] });
    expect(first.changes).toEqual(['snapshot:a=1', 'snapshot:b=true', 'snapshot:c="x"']);
    expect(first.state).toBe('committed');

    const second = await runWith(dir, { results: [result('a', 2), result('b', true), result('d', 'new'), result('c', 'x', 'def')] });
    expect(second.changes).toEqual(['changed:a=2', 'added:d="new"']);
    expect(second.counts).toMatchObject({ added: 1, changed: 1, removed: 0, snapshot: 0, unchanged: 2, mode: 'differential' });

    const third = await runWith(dir, { results: [result('a', 2), result('c', 'x', 'def')] });
    expect(third.changes).toEqual(['removed:b=true', 'removed:d="new"']);
    expect(third.counts).toMatchObject({ removed: 2, unchanged: 2 });

    const fourth = await runWith(dir, { results: [result('a', 2), result('c', 'x', 'def')] });
    expect(fourth.changes).toEqual([]);
    expect(fourth.counts.unchanged).toBe(2);
  });

  it('remove nothing of a check that failed, and keep errors flowing', async () => {
    const dir = tempDir();
    await runWith(dir, { results: [result('a', 1), result('b', 2, 'def')] });
    const run = await runWith(dir, { results: [result('a', 1)], errors: [error('def')] });
    expect(run.changes).toEqual([]);
    expect(run.errors).toHaveLength(1);
  });

  it('snapshot again on a new bundle version, after the interval, and on a damaged or missing state', async () => {
    const dir = tempDir();
    await runWith(dir, { results: [result('a', 1)] });
    expect((await runWith(dir, { results: [result('a', 1, 'abc', 'v2')] })).changes).toEqual(['snapshot:a=1']);
    expect((await runWith(dir, { results: [result('a', 1, 'abc', 'v2')], now: '2026-12-01T00:59:00.000Z' })).changes).toEqual([]);
    expect((await runWith(dir, { results: [result('a', 1, 'abc', 'v2')], now: '2026-12-01T01:00:00.000Z' })).changes).toEqual([
      'snapshot:a=1',
    ]);
    await writeFile(join(dir, 'results-abuse.json'), '{"format":1,"bund');
    expect((await runWith(dir, { results: [result('a', 1, 'abc', 'v2')], now: '2026-12-01T01:00:01.000Z' })).changes).toEqual([
      'snapshot:a=1',
    ]);
  });

  it('keep the old state when documents failed, and forget every state when the spool dropped documents', async () => {
    const dir = tempDir();
    await runWith(dir, { results: [result('a', 1), result('x', 1, 'def', 'v1', 'analytics')] });
    const before = await readFile(join(dir, 'results-abuse.json'), 'utf8');
    const failed = await runWith(dir, { results: [result('a', 2)], totals: { failed: 1 } });
    expect(failed.state).toBe('kept');
    expect(await readFile(join(dir, 'results-abuse.json'), 'utf8')).toBe(before);
    // Not delivered last time: reported again.
    expect((await runWith(dir, { results: [result('a', 2)] })).changes).toEqual(['changed:a=2']);

    const dropped = await runWith(dir, { results: [result('a', 3)], totals: { dropped: 20 } });
    expect(dropped.state).toBe('invalidated');
    expect((await runWith(dir, { results: [result('a', 3)] })).changes).toEqual(['snapshot:a=3']);
    expect((await runWith(dir, { results: [result('x', 1, 'def', 'v1', 'analytics')] })).changes).toEqual(['snapshot:x=1']);
  });

  it('results: "snapshot" exports every result every run, without change field semantics beyond snapshot', async () => {
    const dir = tempDir();
    await runWith(dir, { results: [result('a', 1)], mode: 'snapshot' });
    expect((await runWith(dir, { results: [result('a', 1)], mode: 'snapshot' })).changes).toEqual(['snapshot:a=1']);
  });
});
