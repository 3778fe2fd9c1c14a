import { describe, expect, it } from 'vitest';
import { DocumentIds, boundedId } from '../src/ids.js';

describe('deterministic document ids', () => {
  it('numbers results per run and check, in arrival order: <run_id>:<check>:<n>', () => {
    const ids = new DocumentIds();
    expect([ids.result({ run_id: 'r1', check: 'abc' }), ids.result({ run_id: 'r1', check: 'abc' })]).toEqual(['r1:abc:0', 'r1:abc:1']);
    expect(ids.result({ run_id: 'r1', check: 'xyz' })).toBe('r1:xyz:0');
    expect(ids.result({ run_id: 'r2', check: 'abc' })).toBe('r2:abc:0');
  });

  it('gives the same ids to the same documents in a new exporter (a retried run re-creates, never duplicates)', () => {
    const first = new DocumentIds();
    const second = new DocumentIds();
    const docs = [
      { run_id: 'r', check: 'abc' },
      { run_id: 'r', check: 'abc' },
    ];
    expect(docs.map((d) => first.result(d))).toEqual(docs.map((d) => second.result(d)));
  });

  it('numbers errors apart from results, "run" for run errors: <run_id>:<check|run>:error:<n>', () => {
    const ids = new DocumentIds();
    ids.result({ run_id: 'r', check: 'abc' });
    expect(ids.error({ run_id: 'r', check: 'abc' })).toBe('r:abc:error:0');
    expect(ids.error({ run_id: 'r' })).toBe('r:run:error:0');
    expect(ids.error({ run_id: 'r' })).toBe('r:run:error:1');
  });

  it('gives the run summary the id <run_id>:run, the same every time (one summary per run)', () => {
    const ids = new DocumentIds();
    ids.result({ run_id: 'r', check: 'run' });
    ids.error({ run_id: 'r' });
    expect(ids.run({ run_id: 'r' })).toBe('r:run');
    expect(ids.run({ run_id: 'r' })).toBe('r:run');
    expect(new DocumentIds().run({ run_id: 'r' })).toBe('r:run');
    expect(ids.run({ run_id: 'x'.repeat(600) })).toMatch(/^sha256:[0-9a-f]{64}$/);
  });

  it('replaces ids over 512 bytes (the Elasticsearch limit) by a stable sha256', () => {
    const long = 'x'.repeat(600);
    expect(boundedId(long)).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(boundedId(long)).toBe(boundedId(long));
    expect(boundedId('short')).toBe('short');
  });
});
