// @gather/core/testing is a published subpath: the other packages' tests reach the contract suites and the
// bundle builders through it (never through core's files), so it must resolve from the package name.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

describe('@gather/core/testing', () => {
  it('is exported with its types first, from the built dist', () => {
    const manifest = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
    const entry = manifest.exports['./testing'];
    expect(Object.keys(entry)[0]).toBe('types');
    expect(entry).toEqual({ types: './dist/testing/index.d.ts', import: './dist/testing/index.js' });
    expect(manifest.peerDependenciesMeta.vitest).toEqual({ optional: true });
  });

  it('resolves by package name and carries the contract suites and bundle builders', async () => {
    const testing = await import('@gather/core/testing');
    expect(Object.keys(testing).sort()).toEqual(
      [
        'exporterContract',
        'fetcherContract',
        'makeBundle',
        'makeKeys',
        'runnerFor',
        'sampleError',
        'sampleResult',
        'sampleRunSummary',
        'tar',
      ].sort(),
    );
    const keys = testing.makeKeys();
    const bundle = testing.makeBundle({ keys, checks: [{ id: 'abc', category: 'abuse', script: 'true' }] });
    expect(bundle.subarray(257, 262).toString()).toBe('ustar');
  });

  it('is not part of the main entry (the agent never loads test code)', async () => {
    const core: Record<string, unknown> = await import('../src/index.js');
    expect(core.exporterContract).toBeUndefined();
    expect(core.makeBundle).toBeUndefined();
  });
});
