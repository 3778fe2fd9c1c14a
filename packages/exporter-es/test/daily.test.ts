import { describe, expect, it } from 'vitest';
import { dailyIndex, dailyPattern, dailyTemplate, dayOf, dayOfIndex, expiredIndices } from '../src/daily.js';
import { RESULTS_MAPPINGS } from '../src/mapping.js';

describe('daily indices', () => {
  it('are named after the UTC day of the document, whatever the sending time', () => {
    expect(dailyIndex('gather-results', '2026-12-01T23:59:59.999Z')).toBe('gather-results-2026.12.01');
    expect(dailyIndex('gather-results', '2026-12-02T00:30:00+02:00')).toBe('gather-results-2026.12.01');
    expect(dailyIndex('gather-results', '2026-12-02T00:00:00.000Z')).toBe('gather-results-2026.12.02');
    const now = new Date('2026-03-04T05:06:07Z');
    expect(dayOf('not a date', now)).toBe('2026.03.04');
    expect(dayOf(undefined, now)).toBe('2026.03.04');
    // Date's lenient parser would read this as the year 123: an index no template matches.
    expect(dayOf('not a date 123', now)).toBe('2026.03.04');
  });

  it('reads the day back from an index name, and only from a daily index of that base', () => {
    expect(dayOfIndex('gather-results', 'gather-results-2026.12.01')?.toISOString()).toBe('2026-12-01T00:00:00.000Z');
    expect(dayOfIndex('gather-results', 'gather-results-eu-2026.12.01')).toBeUndefined();
    expect(dayOfIndex('gather-results', 'gather-results-2026.13.01')).toBeUndefined();
    expect(dayOfIndex('gather-results', 'gather-results-2026.02.30')).toBeUndefined();
    expect(dayOfIndex('gather-results', 'gather-results')).toBeUndefined();
  });

  it('expire after keepDays full days: today and the keepDays - 1 days before are kept', () => {
    const names = ['2026.11.30', '2026.12.01', '2026.12.02', '2026.12.08'].map((d) => `gather-runs-${d}`);
    const now = new Date('2026-12-08T12:00:00Z');
    expect(expiredIndices('gather-runs', [...names, 'gather-runs', 'other-2026.01.01'], 7, now)).toEqual([
      'gather-runs-2026.11.30',
      'gather-runs-2026.12.01',
    ]);
    expect(expiredIndices('gather-runs', names, 1, now)).toEqual(names.slice(0, 3));
  });

  it('get a template matching their pattern only, with the alias unless an index has that name', () => {
    const template = dailyTemplate({ index: 'gather-results', kind: 'results', priority: 200, alias: true });
    expect(dailyPattern('gather-results')).toBe('gather-results-2*');
    expect(template).toMatchObject({
      index_patterns: ['gather-results-2*'],
      priority: 200,
      template: { mappings: RESULTS_MAPPINGS, aliases: { 'gather-results': {} } },
    });
    const without = dailyTemplate({ index: 'gather-results', kind: 'results', priority: 200, alias: false });
    expect(without.template).not.toHaveProperty('aliases');
    expect((without._meta as { hash: string }).hash).not.toBe((template._meta as { hash: string }).hash);
  });
});
