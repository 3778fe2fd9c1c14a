// gather-fleet's pure parts, without Elasticsearch: --since durations and the human tables.
import { describe, expect, it } from 'vitest';
import { parseDuration } from '../src/cli.js';
import { formatAbused, formatTable } from '../src/format.js';

describe('--since durations', () => {
  it('reads seconds, minutes, hours and days', () => {
    expect(parseDuration('30s')).toBe(30_000);
    expect(parseDuration('30m')).toBe(1_800_000);
    expect(parseDuration('2h')).toBe(7_200_000);
    expect(parseDuration('1.5d')).toBe(129_600_000);
  });

  it('refuses anything else with a message naming the value and examples', () => {
    for (const bad of ['2', 'h', '2 hours', '-1h', ''])
      expect(() => parseDuration(bad)).toThrow(/is not a duration: use e\.g\. 30m, 2h or 1d/);
  });
});

describe('human tables', () => {
  it('align columns, flatten whitespace and cut long cells', () => {
    const table = formatTable(
      ['host', 'value'],
      [
        ['a', 'one\ntwo'],
        ['longer-host', 'x'.repeat(100)],
      ],
    );
    const [header, first, second] = table.trimEnd().split('\n');
    expect(header).toBe('host         value');
    expect(first).toBe('a            one two');
    expect(second!.startsWith('longer-host  ')).toBe(true);
    expect(second!.length).toBe('longer-host  '.length + 60);
    expect(second!.endsWith('…')).toBe(true);
  });

  it('say so when no host is abused', () => {
    expect(formatAbused([])).toBe('No host has an abuse detection now.\n');
  });
});
