import { describe, expect, it } from 'vitest';
import { parseCheckOutput } from '../src/index.js';

const r = (name: string, type: string, value: unknown) => ({ name, type, value });

describe('parseCheckOutput', () => {
  it('reads one object', () => {
    expect(parseCheckOutput('{"name":"a","type":"number","value":3}\n')).toEqual({ results: [r('a', 'number', 3)], values: 1, problems: [] });
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
    expect(parseCheckOutput(' \n')).toEqual({ results: [], values: 0, problems: [] });
  });

  it('accepts an empty array as an explicit "no results"', () => {
    expect(parseCheckOutput('[]\n')).toEqual({ results: [], values: 1, problems: [] });
  });

  it('reads the original gather layout, the value under a key named after its type', () => {
    const parsed = parseCheckOutput('{"name":"a","type":"boolean","boolean":1}\n{"name":"b","type":"number","number":12}');
    expect(parsed).toEqual({ results: [r('a', 'boolean', true), r('b', 'number', 12)], values: 2, problems: [] });
  });
});
