import { execFileSync } from 'node:child_process';
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { packPackages, tempDir } from './_helpers.js';

// `pnpm pack` (the documented way to make installable tarballs, README "Try it") must rewrite the
// `workspace:^` ranges between our packages to real versions; `npm pack` keeps them, which is why the
// README names pnpm. The bins are committed shims, so the tarballs hold them with their exec bit.
const packages = ['core', 'agent', 'checks-bundler', 'fetcher-s3', 'exporter-es'];

function packed(dir: string, tarball: string, member: string): string {
  return execFileSync('tar', ['-xzOf', join(dir, tarball), `package/${member}`], { encoding: 'utf8' });
}

function checkTarballs(dir: string): void {
  packPackages(dir, packages);
  const tarballs = readdirSync(dir).sort();
  expect(tarballs).toEqual(packages.map((name) => `gather-${name}-0.1.0.tgz`).sort());
  for (const tarball of tarballs) {
    const manifest = packed(dir, tarball, 'package.json');
    expect(manifest, tarball).not.toContain('workspace:');
    const json = JSON.parse(manifest) as Record<string, Record<string, string> | undefined>;
    expect(json.repository, tarball).toBeDefined();
    expect(json.bugs, tarball).toBeDefined();
    if (json.dependencies?.['@gather/core']) expect(json.dependencies['@gather/core']).toBe('^0.1.0');
  }
  const listing = execFileSync('tar', ['-tvzf', join(dir, 'gather-agent-0.1.0.tgz')], { encoding: 'utf8' });
  expect(listing).toMatch(/^-rwxr-xr-x .* package\/bin\/gather-agent\.js$/m);
  expect(listing).toMatch(/ package\/dist\/cli\.js$/m);
  expect(listing).toMatch(/ package\/dist\/bundle\/gather-agent\.js$/m);
  expect(packed(dir, 'gather-agent-0.1.0.tgz', 'bin/gather-agent.js')).toContain(
    "new URL('../dist/bundle/gather-agent.js', import.meta.url)",
  );
}

describe('pnpm pack', () => {
  it('makes installable tarballs: no workspace: ranges, the bins and dist inside', () => {
    const dir = tempDir('gather-pack-');
    try {
      checkTarballs(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
