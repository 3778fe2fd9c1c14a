import { describe, expect, it } from 'vitest';
import { Outage } from '../src/outage.js';
import { resolveOptions } from '../src/options.js';
import { ResponseError } from '../src/transport.js';

describe('the outage window', () => {
  const settings = resolveOptions({ node: 'http://127.0.0.1:1', probeIntervalMs: 30_000 });

  it('reopens between 0.5x and 1.5x the probe interval, spread across a fleet that saw the outage together', () => {
    const reopenDelays = Array.from({ length: 200 }, () => {
      const outage = new Outage(
        settings,
        () => undefined,
        () => {},
        (m) => m,
      );
      const before = Date.now();
      outage.markDown(new Error('connect ECONNREFUSED'));
      expect(outage.isDown()).toBe(true);
      return outage.reopensAt - before;
    });
    for (const delay of reopenDelays) {
      expect(delay).toBeGreaterThanOrEqual(15_000);
      expect(delay).toBeLessThanOrEqual(45_000 + 50);
    }
    // Not all in the same second: a fleet coming back together would stampede.
    const seconds = new Set(reopenDelays.map((d) => Math.floor(d / 1000)));
    expect(seconds.size).toBeGreaterThan(10);
  });

  it('uses the random source it is given (both ends of the window)', () => {
    const early = new Outage(
      settings,
      () => undefined,
      () => {},
      (m) => m,
      () => 0,
    );
    const late = new Outage(
      settings,
      () => undefined,
      () => {},
      (m) => m,
      () => 0.999999,
    );
    const t = Date.now();
    early.markDown(new Error('down'));
    late.markDown(new Error('down'));
    expect(early.reopensAt - early.openedAt).toBe(15_000);
    expect(late.reopensAt - late.openedAt).toBe(45_000);
    expect(early.openedAt).toBeGreaterThanOrEqual(t);
  });

  it('logs a refused request once, without the prefix the exporter adds to every line (it was printed twice)', () => {
    const lines: string[] = [];
    const outage = new Outage(
      settings,
      () => '/var/spool/gather',
      (_level, line) => lines.push(line),
      (m) => m,
    );
    outage.fail(new ResponseError(404, { error: 'no handler' }), 'installing the index templates');
    expect(outage.fatal?.message).toMatch(/^\[gather\] \[exporter-es\] Elasticsearch at .* refused the request/);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^Elasticsearch at .* refused the request while installing the index templates/);
    expect(lines[0]).toContain('Documents are kept in the spool (/var/spool/gather)');
  });

  it('announces one outage once, however often it is tried again, and its end once', () => {
    const lines: Array<[string, string]> = [];
    const outage = new Outage(
      settings,
      () => '/var/spool/gather',
      (level, line) => lines.push([level, line]),
      (m) => m,
    );
    outage.answered(); // nothing was announced: nothing to say
    outage.markDown(new Error('connect ECONNREFUSED'));
    outage.probeNow(); // a run's closing flush, or the daemon's next cycle, tries again
    outage.markDown(new Error('connect ECONNREFUSED'));
    expect(lines).toEqual([
      [
        'warn',
        'Elasticsearch at http://127.0.0.1:1 is unavailable (connect ECONNREFUSED); spooling to /var/spool/gather and retrying in 30 s.',
      ],
    ]);
    outage.answered();
    outage.answered();
    expect(lines.slice(1)).toEqual([['info', 'Elasticsearch at http://127.0.0.1:1 answers again (unavailable for 0 s).']]);
    // A later outage is a new one.
    outage.probeNow();
    outage.markDown(new Error('connect ETIMEDOUT'));
    expect(lines).toHaveLength(3);
    expect(lines[2]).toEqual(['warn', expect.stringContaining('is unavailable (connect ETIMEDOUT)')]);
  });

  it('stays down as long as a Retry-After asked, even when the window would reopen sooner or a flush probes', () => {
    const outage = new Outage(
      settings,
      () => '/var/spool/gather',
      () => {},
      (m) => m,
      () => 0, // the shortest jittered window: 15 s
    );
    outage.markDown(new ResponseError(429, { error: 'busy' }, 120_000));
    expect(outage.reopensAt - outage.openedAt).toBe(120_000);
    outage.probeNow();
    expect(outage.isDown()).toBe(true);
    expect(outage.reopensAt - outage.openedAt).toBe(120_000);
    // Without one, a probe reopens it at once.
    outage.markDown(new Error('connect ECONNREFUSED'));
    outage.probeNow();
    expect(outage.isDown()).toBe(false);
  });
});
