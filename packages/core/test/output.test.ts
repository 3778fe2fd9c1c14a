import { describe, expect, it } from 'vitest';
import { MAX_VALUE_DEPTH, parseCheckOutput } from '../src/index.js';

const r = (name: string, type: string, value: unknown) => ({ name, type, value });

describe('parseCheckOutput', () => {
  it('reads one object', () => {
    expect(parseCheckOutput('{"name":"a","type":"number","value":3}\n')).toEqual({
      results: [r('a', 'number', 3)],
      values: 1,
      problems: [],
      problemCount: 0,
    });
  });

  it('reads an array of objects', () => {
    const out = JSON.stringify([r('a', 'boolean', true), r('b', 'string', 'x')]);
    expect(parseCheckOutput(out).results).toEqual([r('a', 'boolean', true), r('b', 'string', 'x')]);
  });

  it('reads NDJSON lines and pretty-printed objects back to back', () => {
    const out = `${JSON.stringify(r('a', 'array', [1]))}\n${JSON.stringify(r('b', 'object', { k: '}' }), null, 2)}{"name":"c","type":"string","value":"{["}`;
    const parsed = parseCheckOutput(out);
    expect(parsed.problems).toEqual([]);
    expect(parsed.results.map((x) => x.name)).toEqual(['a', 'b', 'c']);
  });

  it('keeps only name, type and value', () => {
    expect(parseCheckOutput('{"name":"a","type":"number","value":1,"extra":2}').results).toEqual([r('a', 'number', 1)]);
  });

  it.each([
    ['invalid JSON', '{"name": "a", "type": "number", "value": }', /invalid JSON/],
    ['plain text', 'hello world', /not JSON: hello world/],
    ['an unknown type', '{"name":"a","type":"int","value":1}', /"type" must be one of/],
    ['a value of the wrong type', '{"name":"a","type":"number","value":"1"}', /type is "number" but value is string/],
    ['an empty name', '{"name":"","type":"number","value":1}', /"name" must be a non-empty string/],
    ['a missing value', '{"name":"a","type":"string"}', /"value" is missing/],
    ['null as an object value', '{"name":"a","type":"object","value":null}', /value is null/],
    ['a bare number', '42', /not JSON|expected/],
    ['an unterminated object', '{"name":"a"', /not JSON/],
  ])('reports %s as a problem', (_label, stdout, problem) => {
    const parsed = parseCheckOutput(stdout);
    expect(parsed.results).toEqual([]);
    expect(parsed.problems).toHaveLength(1);
    expect(parsed.problems[0]).toMatch(problem);
  });

  it('keeps the valid results next to invalid ones', () => {
    const parsed = parseCheckOutput('{"name":"a","type":"number","value":1}\nnoise\n[{"name":"b","type":"boolean","value":"yes"}]');
    expect(parsed.results).toEqual([r('a', 'number', 1)]);
    expect(parsed.problems).toHaveLength(2);
  });

  it('returns nothing for empty output', () => {
    expect(parseCheckOutput(' \n')).toEqual({ results: [], values: 0, problems: [], problemCount: 0 });
  });

  it('accepts an empty array as an explicit "no results"', () => {
    expect(parseCheckOutput('[]\n')).toEqual({ results: [], values: 1, problems: [], problemCount: 0 });
  });

  it('reads the original gather layout, the value under a key named after its type', () => {
    const parsed = parseCheckOutput('{"name":"a","type":"boolean","boolean":1}\n{"name":"b","type":"number","number":12}');
    expect(parsed).toEqual({ results: [r('a', 'boolean', true), r('b', 'number', 12)], values: 2, problems: [], problemCount: 0 });
  });

  describe('depth limit', () => {
    const nested = (levels: number) => '['.repeat(levels) + '1' + ']'.repeat(levels);

    it(`accepts a value nested ${MAX_VALUE_DEPTH} levels deep and refuses one level more, keeping the other results`, () => {
      expect(MAX_VALUE_DEPTH).toBe(20);
      const atLimit = `{"name":"ok","type":"array","value":${nested(MAX_VALUE_DEPTH)}}`;
      const tooDeep = `{"name":"deep","type":"array","value":${nested(MAX_VALUE_DEPTH + 1)}}`;
      const parsed = parseCheckOutput(`${atLimit}\n${tooDeep}\n{"name":"n","type":"number","value":1}\n`);
      expect(parsed.results.map((x) => x.name)).toEqual(['ok', 'n']);
      expect(parsed.problemCount).toBe(1);
      expect(parsed.problems[0]).toMatch(/^at offset \d+: nested deeper than 20 levels/);
      const objects = `{"name":"o","type":"object","value":${'{"a":'.repeat(MAX_VALUE_DEPTH)}1${'}'.repeat(MAX_VALUE_DEPTH)}}`;
      expect(parseCheckOutput(objects).results).toHaveLength(1);
    });

    it('refuses a value nested 200,000 levels deep without throwing, inside an array of good results', () => {
      const deep = `{"name":"deep","type":"array","value":${nested(200_000)}}`;
      const parsed = parseCheckOutput(`[{"name":"a","type":"number","value":1},${deep},{"name":"b","type":"number","value":2}]`);
      expect(parsed.results.map((x) => x.name)).toEqual(['a', 'b']);
      expect(parsed.problems).toEqual([expect.stringMatching(/^at offset 0\[1\]: nested deeper than 20 levels: \{"name":"deep"/)]);
    });
  });

  it('parses the elements of an array one by one: a bad element costs only itself', () => {
    const parsed = parseCheckOutput(
      '[{"name":"a","type":"number","value":1}, {"name":"b","type":"number"}, nope, {"name":"c","type":"number","value":3}]',
    );
    expect(parsed.results.map((x) => x.name)).toEqual(['a', 'c']);
    expect(parsed.values).toBe(1);
    expect(parsed.problems).toEqual([
      expect.stringMatching(/^at offset 0\[1\]: "b": "value" is missing/),
      expect.stringMatching(/^at offset 0\[2\]: invalid JSON/),
    ]);
  });

  it('keeps the first 3 problems and counts the rest, however many items are invalid', () => {
    const parsed = parseCheckOutput(`[${Array.from({ length: 300_000 }, () => '1').join(',')}]`);
    expect(parsed.problemCount).toBe(300_000);
    expect(parsed.problems).toHaveLength(3);
    expect(parsed.problems[2]).toBe('at offset 0[2]: expected a {name, type, value} object, got number');
  });
});
