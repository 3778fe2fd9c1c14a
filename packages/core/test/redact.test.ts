import { describe, expect, it } from 'vitest';
import { createMemoryExporter } from '../src/adapters.js';
import { createScrubber, MASK, redact, redactText, scrubbingExporter } from '../src/redact.js';
import { sampleError, sampleResult, sampleRunSummary } from '../src/testing/exporter-contract.js';

const SECRET = 'hunter2-Sekr3t/+=&"x';
const TOKEN = 'FwoGZXIvYXdzEJr//////////wEaDAbc';

describe('createScrubber: exact-value scrubbing of the agent secrets', () => {
  const scrub = createScrubber([SECRET, TOKEN]);

  it('masks a secret in every string of a value, deep: names, values, object keys, nested arrays', () => {
    const value = {
      name: `env.${SECRET}`,
      list: ['a', [`x${TOKEN}y`, { [SECRET]: 1 }]],
      nested: { deeper: { text: `GATHER_ES_PASSWORD=${SECRET}\0AWS_SESSION_TOKEN=${TOKEN}` } },
      n: 42,
      ok: true,
      none: null,
    };
    const out = scrub.value(value);
    const text = JSON.stringify(out);
    expect(text).not.toContain(SECRET);
    expect(text).not.toContain(TOKEN);
    expect(out).toEqual({
      name: `env.${MASK}`,
      list: ['a', [`x${MASK}y`, { [MASK]: 1 }]],
      nested: { deeper: { text: `GATHER_ES_PASSWORD=${MASK}\0AWS_SESSION_TOKEN=${MASK}` } },
      n: 42,
      ok: true,
      none: null,
    });
    // The input is left alone: documents are copied, not mutated.
    expect(value.name).toBe(`env.${SECRET}`);
  });

  it('masks the encoded forms a check may print: URL-encoded, base64 (an HTTP header), JSON-escaped', () => {
    for (const form of [encodeURIComponent(SECRET), Buffer.from(SECRET).toString('base64'), JSON.stringify(SECRET).slice(1, -1)]) {
      const out = scrub.text(`before ${form} after`);
      expect(out).not.toContain(form);
      expect(out).toMatch(/^before \[redacted\]=* after$/);
    }
  });

  it('copies objects shared by several documents (one host object) each time, and marks only real cycles', () => {
    const host = { hostname: 'vm-1' };
    const cycle: Record<string, unknown> = { a: SECRET };
    cycle.self = cycle;
    expect(scrub.value([{ host }, { host }, cycle])).toEqual([{ host }, { host }, { a: MASK, self: '[circular]' }]);
    expect(redact([{ host }, { host }])).toEqual([{ host }, { host }]);
  });

  it('leaves values alone when there is no secret, and ignores values too short to scrub safely', () => {
    const doc = sampleResult(1, { a: 'b' });
    expect(createScrubber([]).value(doc)).toBe(doc);
    expect(createScrubber(['', 'ab']).empty).toBe(true);
  });
});

describe('scrubbingExporter: the one redaction point of every exporter', () => {
  it('hands the wrapped exporter results, error records and run summaries without the secrets', async () => {
    const memory = createMemoryExporter();
    const exporter = scrubbingExporter(memory, createScrubber([SECRET]));
    await exporter.exportResults([{ ...sampleResult(1, { [SECRET]: [SECRET] }), name: `leak.${SECRET}` }]);
    await exporter.exportErrors([{ ...sampleError(1), message: `bad ${SECRET}`, stderr: `cat: ${SECRET}` }]);
    await exporter.exportRunSummary!({ ...sampleRunSummary(), message: `failed: ${SECRET}` });
    expect(await exporter.close()).toMatchObject({ delivered: 3 });
    const all = JSON.stringify([memory.results, memory.errors, memory.runs]);
    expect(all).not.toContain(SECRET);
    expect(memory.results[0]).toMatchObject({ name: `leak.${MASK}`, value: { [MASK]: [MASK] } });
    expect(memory.errors[0]).toMatchObject({ message: `bad ${MASK}`, stderr: `cat: ${MASK}` });
  });
});

describe('redact (logs)', () => {
  it('masks secret values (keys too), credential-named fields and URL credentials', () => {
    const out = redact({ msg: `x ${SECRET}`, [SECRET]: 1, password: 'p4ssw0rd', url: 'https://u:pw@es:9200' }, [SECRET]);
    expect(out).toEqual({ msg: `x ${MASK}`, [MASK]: 1, password: MASK, url: `https://u:${MASK}@es:9200` });
    expect(redactText(`a ${SECRET} b`, [SECRET])).toBe(`a ${MASK} b`);
  });
});
