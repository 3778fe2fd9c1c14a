import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { generateSigningKeyPair } from '@gather/checks-bundler';
import { ConfigError } from '@gather/core';
import { createExporter, createFetcher, importOptional, installHint, oneShotOutageLine } from '../src/adapters.js';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/logger.js';
import { agent, tempDir } from './_helpers.js';

const notFound = (specifier: string) => () =>
  Promise.reject(
    Object.assign(new Error(`Cannot find package '${specifier}' imported from /usr/lib/node_modules/@gather/agent/dist/adapters.js`), {
      code: 'ERR_MODULE_NOT_FOUND',
    }),
  );

const dir = tempDir('gather-adapters-');
const publicKey = join(dir, 'key.pub.pem');
writeFileSync(publicKey, generateSigningKeyPair().publicKeyPem);
const logger = createLogger({ level: 'silent' });

describe('optional adapters', () => {
  it('says how to install the Elasticsearch exporter when it is selected but not installed', async () => {
    const config = loadConfig({
      env: { GATHER_BUNDLE: 'x', GATHER_PUBLIC_KEY: publicKey, GATHER_EXPORTER: 'elasticsearch', GATHER_ES_URL: 'http://es:9200' },
    });
    const error = await createExporter(config, { logger, importer: notFound('@gather/exporter-es') }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toMatch(
      /^\[gather\] Install @gather\/exporter-es to export to Elasticsearch: pnpm install \(at the root of the gather repository/,
    );
  });

  it('says how to install the S3 fetcher when an s3:// bundle is configured but it is not installed', async () => {
    const config = loadConfig({ env: { GATHER_BUNDLE: 's3://bucket/prod', GATHER_PUBLIC_KEY: publicKey } });
    const error = await createFetcher(config, { logger, importer: notFound('@gather/fetcher-s3') }).catch((e: unknown) => e);
    expect((error as Error).message).toMatch(/^\[gather\] Install @gather\/fetcher-s3 to fetch bundles from S3: pnpm install /);
  });

  it.each([
    ['/usr/lib/node_modules/@gather/agent/dist/adapters.js', 'npm install --global @gather/fetcher-s3'],
    ['/usr/local/lib/node_modules/@gather/agent/dist/adapters.js', 'npm install --global @gather/fetcher-s3'],
    ['/root/.local/share/pnpm/global/5/node_modules/@gather/agent/dist/adapters.js', 'pnpm add --global @gather/fetcher-s3'],
    ['/srv/ops/node_modules/@gather/agent/dist/adapters.js', 'cd /srv/ops && npm install @gather/fetcher-s3'],
    [
      '/home/me/gather/packages/agent/dist/adapters.js',
      'pnpm install (at the root of the gather repository: the workspace has every adapter)',
    ],
  ])('the install hint follows how the agent was installed (%s)', (agentFile, hint) => {
    expect(installHint('@gather/fetcher-s3', agentFile)).toBe(hint);
  });

  it('a one-off run words an Elasticsearch outage as "the next run sends them", not as a retry', () => {
    const line =
      'Elasticsearch at http://127.0.0.1:1 is unavailable (connect ECONNREFUSED); spooling to /var/spool/gather and retrying in 30 s.';
    expect(oneShotOutageLine(line)).toBe(
      'Elasticsearch at http://127.0.0.1:1 is unavailable (connect ECONNREFUSED); spooling to /var/spool/gather; the next gather-agent run (or the daemon) sends them first.',
    );
  });

  it("logs the Elasticsearch exporter's lines at their level (spool delivery is info, not a warning)", async () => {
    const config = loadConfig({
      env: { GATHER_BUNDLE: 'x', GATHER_PUBLIC_KEY: publicKey, GATHER_EXPORTER: 'elasticsearch', GATHER_ES_URL: 'http://127.0.0.1:1' },
    });
    const seen: Array<[string, string]> = [];
    const at = (level: string) => (msg: string) => seen.push([level, msg]);
    const recording = { ...logger, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
    let log: ((line: string, level: 'debug' | 'info' | 'warn' | 'error') => void) | undefined;
    const fakeModule = { createEsExporter: (options: { log?: typeof log }) => ((log = options.log), { name: 'elasticsearch' }) };
    await createExporter(config, { logger: recording, importer: async () => fakeModule });
    log!('Delivered spool segment spool-1.ndjson (3 documents).', 'info');
    log!('Elasticsearch is unavailable.', 'warn');
    log!('Spool full: dropped.', 'error');
    expect(seen).toEqual([
      ['info', 'Delivered spool segment spool-1.ndjson (3 documents).'],
      ['warn', 'Elasticsearch is unavailable.'],
      ['error', 'Spool full: dropped.'],
    ]);
  });

  it('does not hide a broken install of the adapter itself (one of its own dependencies missing)', async () => {
    const error = await importOptional('@gather/exporter-es', 'export to Elasticsearch', notFound('@elastic/transport')).catch(
      (e: unknown) => e,
    );
    expect(error).not.toBeInstanceOf(ConfigError);
    expect((error as Error).message).toMatch(/Cannot find package '@elastic\/transport'/);
  });

  it('loads nothing optional for a local bundle and NDJSON, and the adapters when selected', async () => {
    const local = loadConfig({ env: { GATHER_BUNDLE: 'x', GATHER_PUBLIC_KEY: publicKey } });
    const imported: string[] = [];
    const spy = (specifier: string) => (imported.push(specifier), import(specifier));
    expect((await createFetcher(local, { logger, importer: spy })).name).toBe('file');
    expect((await createExporter(local, { logger, importer: spy })).name).toBe('stdout');
    expect(imported).toEqual([]);
    const remote = loadConfig({
      env: {
        GATHER_BUNDLE: 's3://bucket/prod',
        GATHER_PUBLIC_KEY: publicKey,
        GATHER_EXPORTER: 'elasticsearch',
        GATHER_ES_URL: 'http://127.0.0.1:1',
        GATHER_SPOOL_DIR: tempDir(),
      },
    });
    const fetcher = await createFetcher(remote, { logger, importer: spy });
    const exporter = await createExporter(remote, { logger, importer: spy });
    expect([fetcher.name, exporter.name]).toEqual(['s3', 'elasticsearch']);
    expect(imported).toEqual(['@gather/fetcher-s3', '@gather/exporter-es']);
    await fetcher.close?.();
  });

  it('no file of dist/ imports the S3 or Elasticsearch adapters (or their SDKs) statically', () => {
    const distDir = join(__dirname, '../dist');
    const files = readdirSync(distDir).filter((f) => f.endsWith('.js'));
    expect(files).toContain('cli.js');
    expect(files).toContain('adapters.js');
    for (const file of files) {
      const text = readFileSync(join(distDir, file), 'utf8');
      expect(text, file).not.toMatch(
        /^\s*import\s[^;]*from\s*['"](@gather\/(fetcher-s3|exporter-es)|@aws-sdk\/[^'"]*|@elastic\/[^'"]*)['"]/m,
      );
      expect(text, file).not.toMatch(/^\s*import\s*['"](@gather\/(fetcher-s3|exporter-es)|@aws-sdk|@elastic)/m);
    }
  });

  it('gather-agent run --dry-run fetches and verifies, lists the checks, runs and exports nothing', async () => {
    const { makeBundleFile } = await import('./_helpers.js');
    const sentinel = join(tempDir(), 'ran');
    const fx = await makeBundleFile({
      'abuse/run-abc': `touch ${sentinel}`,
      'abuse/run-abd': `touch ${sentinel}`,
      'analytics/run-def': `touch ${sentinel}`,
    });
    const out = join(tempDir(), 'out.ndjson');
    const result = await agent([
      'run',
      '--dry-run',
      '--bundle',
      `file:${fx.bundlePath}`,
      '--public-key',
      fx.publicKeyPath,
      '--category',
      'abuse',
      '--out',
      out,
    ]);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(
      new RegExp(
        `^ok: bundle \\S+ \\(sha256 [0-9a-f]{64}, created .+\\)\\nabuse: abc abd\\ndry run: would run 2 checks from file:${fx.bundlePath} with the file exporter; nothing was run or exported\\.\\n$`,
      ),
    );
    expect(readdirSync(join(out, '..'))).toEqual([]);
    expect(() => readFileSync(sentinel)).toThrow();
  });
});
