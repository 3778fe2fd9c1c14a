import { describe, expect, it } from 'vitest';
import { sampleResult } from '@gather/core/testing';
import {
  ERRORS_MAPPINGS,
  FLATTENED_DEPTH_LIMIT,
  RESULTS_MAPPINGS,
  RUNS_MAPPINGS,
  indexTemplate,
  resultSource,
  typedValueFields,
} from '../src/mapping.js';

describe('typed value fields', () => {
  it('adds exactly one value_<type> field per JSON type, plus value_json', () => {
    expect(typedValueFields(true)).toEqual({ value_json: 'true', value_boolean: true });
    expect(typedValueFields(42.5)).toEqual({ value_json: '42.5', value_number: 42.5 });
    expect(typedValueFields('up')).toEqual({ value_json: '"up"', value_string: 'up' });
    expect(typedValueFields(['a', 1])).toEqual({ value_json: '["a",1]', value_array: { items: ['a', 1] } });
    expect(typedValueFields({ k: [1] })).toEqual({ value_json: '{"k":[1]}', value_object: { k: [1] } });
  });

  it('keeps null (type "object") and values deeper than the flattened limit in value_json only', () => {
    expect(typedValueFields(null)).toEqual({ value_json: 'null' });
    let deep: unknown = 'leaf';
    for (let i = 0; i < FLATTENED_DEPTH_LIMIT + 1; i++) deep = { d: deep };
    expect(typedValueFields(deep)).toEqual({ value_json: JSON.stringify(deep) });
    expect(typedValueFields([deep])).toEqual({ value_json: JSON.stringify([deep]) });
  });

  it('maps every typed field, and never maps the original value (it cannot conflict)', () => {
    const props = RESULTS_MAPPINGS.properties;
    expect(props.value).toEqual({ type: 'object', enabled: false });
    expect(props.value_boolean.type).toBe('boolean');
    expect(props.value_number.type).toBe('double');
    expect(props.value_string.type).toBe('keyword');
    expect(props.value_array.type).toBe('flattened');
    expect(props.value_object.type).toBe('flattened');
    expect(props['@timestamp'].type).toBe('date');
    for (const field of ['name', 'category', 'check', 'run_id'] as const) expect(props[field].type).toBe('keyword');
    expect(RESULTS_MAPPINGS.dynamic).toBe(false);
  });
});

describe('result source', () => {
  it('is the document unchanged plus the typed fields, as valid JSON', () => {
    const doc = sampleResult(1, { nested: 'x "quoted"' });
    const parsed = JSON.parse(resultSource(doc)) as Record<string, unknown>;
    expect(parsed).toEqual({ ...doc, value_json: '{"nested":"x \\"quoted\\""}', value_object: { nested: 'x "quoted"' } });
  });
});

describe('index template', () => {
  it('matches exactly its index, with a priority and the mappings of its kind', () => {
    const template = indexTemplate({ index: 'gather-results', kind: 'results', priority: 250, settings: { number_of_replicas: 0 } });
    expect(template).toMatchObject({
      index_patterns: ['gather-results'],
      priority: 250,
      template: { settings: { number_of_replicas: 0 }, mappings: RESULTS_MAPPINGS },
    });
    expect(indexTemplate({ index: 'gather-errors', kind: 'errors', priority: 250 })).toMatchObject({
      template: { mappings: ERRORS_MAPPINGS },
    });
  });

  it('keeps replicas to the cluster (0-1) unless the settings choose replicas themselves', () => {
    const settingsOf = (settings?: Record<string, unknown>) =>
      (
        indexTemplate({ index: 'gather-results', kind: 'results', priority: 200, ...(settings ? { settings } : {}) }).template as {
          settings: unknown;
        }
      ).settings;
    expect(settingsOf()).toEqual({ 'index.auto_expand_replicas': '0-1' });
    expect(settingsOf({ number_of_shards: 2 })).toEqual({ 'index.auto_expand_replicas': '0-1', number_of_shards: 2 });
    for (const own of [
      { number_of_replicas: 2 },
      { 'index.number_of_replicas': 2 },
      { index: { number_of_replicas: 2 } },
      { auto_expand_replicas: '0-all' },
      { 'index.auto_expand_replicas': false },
    ]) {
      expect(settingsOf(own)).toEqual(own);
    }
  });

  it('of the runs index maps every run summary field explicitly: numbers aggregatable, identity as keywords', () => {
    const template = indexTemplate({ index: 'gather-runs', kind: 'runs', priority: 200 });
    expect(template).toMatchObject({ index_patterns: ['gather-runs'], priority: 200, template: { mappings: RUNS_MAPPINGS } });
    const props = RUNS_MAPPINGS.properties;
    expect(RUNS_MAPPINGS.dynamic).toBe(false);
    expect(props['@timestamp'].type).toBe('date');
    for (const field of ['kind', 'run_id', 'category', 'outcome', 'trigger'] as const) expect(props[field].type).toBe('keyword');
    for (const group of [props.host, props.agent, props.bundle]) {
      for (const field of Object.values(group.properties)) expect(field.type).toBe('keyword');
    }
    expect(Object.keys(props.checks.properties).sort()).toEqual(['failed', 'ok', 'run', 'timed_out']);
    expect(Object.keys(props.export.properties).sort()).toEqual([
      'dead_lettered',
      'delivered',
      'dropped',
      'failed',
      'recovered',
      'retried',
      'spooled',
      'unreadable',
    ]);
    for (const field of [...Object.values(props.checks.properties), ...Object.values(props.export.properties)])
      expect(field.type).toBe('long');
    for (const field of ['results', 'errors', 'spooled', 'bytes_fetched', 'peak_rss_bytes'] as const)
      expect(props[field].type).toBe('long');
    expect(props.duration_ms.type).toBe('double');
    expect(props.overrun.type).toBe('boolean');
    expect(props.bundle_unchanged.type).toBe('boolean');
    expect(props.message.type).toBe('text');
  });

  it('hash only what is installed: the same options give the same hash, another kind or priority another', () => {
    const hash = (options: Parameters<typeof indexTemplate>[0]) => (indexTemplate(options)._meta as { hash: string }).hash;
    const runs = { index: 'gather-runs', kind: 'runs', priority: 200 } as const;
    expect(hash(runs)).toBe(hash({ ...runs }));
    expect(hash(runs)).not.toBe(hash({ ...runs, kind: 'errors' }));
    expect(hash(runs)).not.toBe(hash({ ...runs, priority: 201 }));
  });
});
