import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, realpathSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanEnv, makeBundleFile, packPackages, REPO_ROOT, tempDir } from './_helpers.js';

// Installed as the README says (`npm install --global @gather/agent @gather/exporter-es`), each package gets
// its own copy of @gather/core: an error made by the exporter's copy is no `instanceof` the agent's classes.
// The packages are packed (`pnpm pack`) and installed by npm from the tarballs into two npm prefixes, then
// laid out as npm's global install does (<root>/lib/node_modules/<package>/node_modules/<its dependencies>),
// so the agent finds the exporter next to it, each with its own core.
//
// The third-party dependencies (pino and what it needs) are packed from the copies this workspace installed
// and npm installs offline: two CI runs waited 5 minutes on the registry here, which this test is not about.

const ROOT_MODULES = ['lib', 'node_modules'];

/** The directory of every package `dependencies` of the package in `dir` needs, transitively, by name. */
function dependencyDirs(dir: string, found = new Map<string, string>()): Map<string, string> {
  const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  const lookup = createRequire(join(dir, 'package.json')).resolve.paths('') ?? [];
  for (const name of Object.keys(manifest.dependencies ?? {})) {
    if (name.startsWith('@gather/') || found.has(name)) continue;
    const home = lookup.map((modules) => join(modules, name)).find((candidate) => existsSync(join(candidate, 'package.json')));
    if (!home) throw new Error(`${name} (a dependency of ${manifest.name}) is not installed: run pnpm install`);
    found.set(name, realpathSync(home));
    dependencyDirs(realpathSync(home), found);
  }
  return found;
}

/** Packs each third-party dependency of the workspace `packages` into `dir` as npm would; returns the tarballs. */
function packThirdParty(dir: string, packages: readonly string[]): string[] {
  const dirs = new Map<string, string>();
  for (const name of packages) dependencyDirs(join(REPO_ROOT, 'packages', name), dirs);
  return [...dirs].map(([name, source]) => {
    const tarball = join(dir, `${name.replace('/', '-')}.tgz`);
    // npm takes the first path component of a package tarball as its root, whatever its name.
    execFileSync('tar', ['-czf', tarball, '-C', source, '--transform', 's,^\\.,package,', '.'], { stdio: 'pipe' });
    return tarball;
  });
}

/** Installs `tarballs` (the package itself last) like `npm install --global` would put them under `globalRoot`. */
function installGlobally(globalRoot: string, work: string, name: string, tarballs: string[]): void {
  const prefix = join(work, `prefix-${name}`);
  const quiet = ['--no-audit', '--no-fund', '--loglevel=error'];
  execFileSync('npm', ['install', '--prefix', prefix, '--cache', join(work, 'npm-cache'), '--offline', ...quiet, ...tarballs], {
    stdio: 'pipe',
    timeout: 120_000,
  });
  const target = join(globalRoot, ...ROOT_MODULES, '@gather', name);
  mkdirSync(join(globalRoot, ...ROOT_MODULES, '@gather'), { recursive: true });
  renameSync(join(prefix, 'node_modules', '@gather', name), target);
  // What is left (its @gather/core and the rest) is the package's own node_modules, as in a global install.
  renameSync(join(prefix, 'node_modules'), join(target, 'node_modules'));
}

describe('separately installed packages (two copies of @gather/core)', () => {
  let work: string;
  let agentBin: string;

  /** Runs the installed agent on a one-check bundle, exporting with these Elasticsearch settings. */
  async function runInstalledAgent(elasticsearch: Record<string, string>) {
    const fixture = await makeBundleFile({ 'abuse/run-abc': 'output a number 1' });
    const config = join(fixture.dir, 'agent.json');
    writeFileSync(
      config,
      JSON.stringify({
        bundle: fixture.bundlePath,
        publicKey: fixture.publicKeyPath,
        exporter: 'elasticsearch',
        elasticsearch,
        stateDir: join(fixture.dir, 'state'),
        spoolDir: join(fixture.dir, 'spool'),
      }),
    );
    return spawnSync(process.execPath, [agentBin, 'run', '--config', config], { encoding: 'utf8', env: cleanEnv(), timeout: 60_000 });
  }

  beforeAll(() => {
    work = tempDir('gather-installs-');
    const packs = join(work, 'packs');
    mkdirSync(packs);
    packPackages(packs, ['core', 'agent', 'exporter-es']);
    const tgz = (name: string) => join(packs, `gather-${name}-0.1.0.tgz`);
    const globalRoot = join(work, 'global');
    installGlobally(globalRoot, work, 'agent', [...packThirdParty(packs, ['agent']), tgz('core'), tgz('agent')]);
    installGlobally(globalRoot, work, 'exporter-es', [...packThirdParty(packs, ['exporter-es']), tgz('core'), tgz('exporter-es')]);
    agentBin = join(globalRoot, ...ROOT_MODULES, '@gather', 'agent', 'bin', 'gather-agent.js');
  }, 600_000);

  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('has two copies of core', () => {
    const find = spawnSync('find', [join(work, 'global'), '-path', '*/@gather/core/package.json'], { encoding: 'utf8' });
    expect(find.stdout.trim().split('\n')).toHaveLength(2);
  });

  it("reports the exporter's configuration error (a bad index name) as one: exit 2 with its message", async () => {
    // Nothing listens there: the options are refused before anything connects.
    const result = await runInstalledAgent({ url: 'http://127.0.0.1:9', resultsIndex: 'Not_A_Valid_Index' });
    expect(result.stderr).not.toMatch(/Unexpected error/);
    expect(result.stderr).toMatch(/not a valid index name: "Not_A_Valid_Index"/);
    expect(result.status).toBe(2);
  });

  it("reports an error the exporter's copy of core makes at run time as what it is: exit 6, not an unexpected error", async () => {
    // The agent checks index names itself at load now (the test above); this error only the exporter can make:
    // the URL points at a real server that is not Elasticsearch (the S3-compatible one of tools/services).
    const notElasticsearch = process.env.GATHER_S3_ENDPOINT;
    if (!notElasticsearch) throw new Error('GATHER_S3_ENDPOINT is not set: start the services with tools/services start');
    const result = await runInstalledAgent({ url: notElasticsearch });
    expect(result.stderr).not.toMatch(/Unexpected error/);
    expect(result.stderr).toMatch(/Exporting to elasticsearch failed: \[exporter-es\] Elasticsearch at .* refused the request/);
    expect(result.status).toBe(6);
  });
});
