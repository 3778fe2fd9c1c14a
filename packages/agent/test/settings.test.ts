// Each setting is described once (src/settings.ts); the parser, the flags, --help and the README table
// follow from it. Every value the Elasticsearch exporter would refuse is refused while loading (exit 2).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { generateSigningKeyPair } from '@gather/checks-bundler';
import { ConfigError } from '@gather/core';
import type { EsExporterOptions } from '@gather/exporter-es';
import { createExporter } from '../src/adapters.js';
import { loadConfig, type LoadOptions } from '../src/config.js';
import { createLogger } from '../src/logger.js';
import { settingFlags, settingsHelp } from '../src/settings-help.js';
import { SETTINGS, type Command } from '../src/settings.js';
import { agent, cleanEnv, tempDir } from './_helpers.js';

const dir = tempDir('gather-settings-');
const publicKey = join(dir, 'key.pub.pem');
writeFileSync(publicKey, generateSigningKeyPair().publicKeyPem);
const es = { GATHER_BUNDLE: 'x', GATHER_PUBLIC_KEY: publicKey, GATHER_EXPORTER: 'elasticsearch', GATHER_ES_URL: 'http://127.0.0.1:9200' };
const load = (options: LoadOptions) => loadConfig({ uid: 0, ...options, env: { ...es, ...options.env } });

function problemsOf(options: LoadOptions): string[] {
  try {
    load(options);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).problems;
  }
  throw new Error('expected a ConfigError');
}

/** The options the agent passes to the Elasticsearch exporter, caught before it is created. */
async function exporterOptions(env: Record<string, string>): Promise<EsExporterOptions> {
  let options: EsExporterOptions | undefined;
  const importer = async () => ({ createEsExporter: (o: EsExporterOptions) => ((options = o), {}) });
  await createExporter(load({ env }), { logger: createLogger({ level: 'silent' }), importer });
  return options!;
}

describe('Elasticsearch index names', () => {
  it('refuses a bad index name while loading, naming the setting, where it came from and how to fix it', () => {
    const configFile = join(tempDir('gather-settings-'), 'agent.json');
    writeFileSync(configFile, JSON.stringify({ elasticsearch: { errorsIndex: '_errors' } }));
    expect(problemsOf({ configFile, env: { GATHER_ES_RESULTS_INDEX: 'Gather-Results' } })).toEqual([
      'elasticsearch.resultsIndex: GATHER_ES_RESULTS_INDEX is not a valid index name: "Gather-Results". Use lowercase letters, digits, ".", "_" and "-", not starting with "_" or "-" (at most 255 bytes). Set it to a name such as "gather-results".',
      `elasticsearch.errorsIndex: "elasticsearch.errorsIndex" in ${configFile} is not a valid index name: "_errors". Use lowercase letters, digits, ".", "_" and "-", not starting with "_" or "-" (at most 255 bytes). Set it to a name such as "gather-errors".`,
    ]);
  });

  it('refuses two settings naming one index, a default included', () => {
    expect(problemsOf({ env: { GATHER_ES_RUNS_INDEX: 'gather-results' } })).toEqual([
      'elasticsearch.runsIndex: GATHER_ES_RUNS_INDEX names the same index "gather-results" as elasticsearch.resultsIndex (default); give each its own index',
    ]);
    expect(problemsOf({ env: { GATHER_ES_LATEST_INDEX: 'mine', GATHER_ES_HOSTS_INDEX: 'mine' } })).toEqual([
      'elasticsearch.hostsIndex: GATHER_ES_HOSTS_INDEX names the same index "mine" as GATHER_ES_LATEST_INDEX; give each its own index',
    ]);
  });

  it('leaves the settings of an exporter that is not selected alone', () => {
    expect(load({ env: { GATHER_EXPORTER: 'stdout', GATHER_ES_RESULTS_INDEX: 'Bad', GATHER_ES_SHARDS: '0' } }).exporter).toBe('stdout');
  });

  it('gather-agent run: a bad index name is a configuration error (exit 2) before anything runs', async () => {
    const result = await agent(
      [
        'run',
        '--bundle',
        join(dir, 'none.tar'),
        '--public-key',
        publicKey,
        '--exporter',
        'elasticsearch',
        '--es-url',
        'http://127.0.0.1:1',
      ],
      {
        env: cleanEnv({ GATHER_ES_RESULTS_INDEX: 'Results' }),
      },
    );
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('elasticsearch.resultsIndex: GATHER_ES_RESULTS_INDEX is not a valid index name: "Results".');
    expect(result.stderr).toContain('Run "gather-agent run --help" for the options.');
  });
});

describe('the S3 bundle source', () => {
  it('refuses, while loading, a prefix or an endpoint fetcher-s3 would refuse', () => {
    const base = { GATHER_EXPORTER: 'stdout' };
    expect(problemsOf({ env: { ...base, GATHER_BUNDLE: 's3://bucket/gather//prod' } })).toEqual([
      'bundle: GATHER_BUNDLE "s3://bucket/gather//prod" has a prefix that has an empty, "." or ".." path segment: use s3://bucket/prefix',
    ]);
    expect(problemsOf({ env: { ...base, GATHER_BUNDLE: 's3://bucket/../prod' } })).toHaveLength(1);
    expect(problemsOf({ env: { ...base, GATHER_BUNDLE: 's3://bucket/prod', GATHER_S3_ENDPOINT: 'http://[::1' } })).toEqual([
      's3.endpoint: GATHER_S3_ENDPOINT must be an http(s) URL such as https://s3.example.com:9000',
    ]);
    expect(load({ env: { ...base, GATHER_BUNDLE: 's3://bucket/gather/prod/', GATHER_S3_ENDPOINT: 'http://[::1]:9300' } }).source).toEqual({
      kind: 's3',
      bucket: 'bucket',
      prefix: 'gather/prod',
    });
  });
});

describe('shards and replicas of the indices', () => {
  it("passes elasticsearch.shards / .replicas to the exporter as the templates' index settings", async () => {
    expect((await exporterOptions({ GATHER_ES_SHARDS: '3', GATHER_ES_REPLICAS: '2' })).indexSettings).toEqual({
      'index.number_of_shards': 3,
      'index.number_of_replicas': 2,
    });
    expect((await exporterOptions({ GATHER_ES_REPLICAS: '0' })).indexSettings).toEqual({ 'index.number_of_replicas': 0 });
    // Unset: the exporter's default (replicas following the cluster's size).
    expect((await exporterOptions({})).indexSettings).toBeUndefined();
  });

  it('takes them from the file too', () => {
    const configFile = join(tempDir('gather-settings-'), 'agent.json');
    writeFileSync(configFile, JSON.stringify({ elasticsearch: { shards: 2, replicas: 1 } }));
    expect(load({ configFile }).elasticsearch?.indexSettings).toEqual({ 'index.number_of_shards': 2, 'index.number_of_replicas': 1 });
  });

  it('refuses values outside their range', () => {
    expect(problemsOf({ env: { GATHER_ES_SHARDS: '0', GATHER_ES_REPLICAS: '1.5' } })).toEqual([
      'elasticsearch.shards: GATHER_ES_SHARDS must be an integer from 1 to 1024 (got "0")',
      'elasticsearch.replicas: GATHER_ES_REPLICAS must be an integer from 0 to 32 (got "1.5")',
    ]);
    expect(problemsOf({ env: { GATHER_ES_SHARDS: '1025', GATHER_ES_REPLICAS: '-1' } })).toHaveLength(2);
  });
});

describe('flags and --help, from the settings', () => {
  const commands: Command[] = ['run', 'daemon', 'verify'];

  it.each(commands)('gather-agent %s --help lists every flag the command takes, with its variable', async (command) => {
    const result = await agent([command, '--help'], { env: cleanEnv() });
    expect(result.code).toBe(0);
    const flags = Object.keys(settingFlags(command));
    expect(flags.length).toBeGreaterThan(5);
    for (const flag of flags) expect(result.stdout).toMatch(new RegExp(`^  --${flag}\\b`, 'm'));
    for (const setting of SETTINGS.filter((s) => s.flag && flags.includes(s.flag) && s.env)) {
      expect(result.stdout).toMatch(new RegExp(`^  --${setting.flag}\\b.*\\[${setting.env}\\]$`, 'm'));
    }
    expect(result.stdout).toContain(settingsHelp(command));
  });

  it('takes no flag for a secret (argv is visible in ps) and a flag only once', () => {
    for (const key of ['elasticsearch.apiKey', 'elasticsearch.password']) expect(SETTINGS.find((s) => s.key === key)?.flag).toBeUndefined();
    const flags = SETTINGS.flatMap((s) => (s.flag ? [s.flag] : []));
    expect(new Set(flags).size).toBe(flags.length);
    const envs = SETTINGS.flatMap((s) => (s.env ? [s.env] : []));
    expect(new Set(envs).size).toBe(envs.length);
  });

  it('a flag of another command is a usage error', async () => {
    const result = await agent(['verify', '--grace', '5'], { env: cleanEnv() });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/Unknown option '--grace'/);
  });
});
