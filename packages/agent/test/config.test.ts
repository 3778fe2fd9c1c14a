import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { generateSigningKeyPair } from '@gather/checks-bundler';
import { ConfigError } from '@gather/core';
import { loadConfig, parseBundleSource, type LoadOptions } from '../src/config.js';
import { agent, cleanEnv, tempDir } from './_helpers.js';

const dir = tempDir('gather-config-');
const publicKey = join(dir, 'key.pub.pem');
writeFileSync(publicKey, generateSigningKeyPair().publicKeyPem);
const secretFile = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text, { mode: 0o600 });
  return path;
};

function file(content: unknown): string {
  const path = join(tempDir('gather-config-'), 'agent.json');
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
  return path;
}

const load = (options: LoadOptions) => loadConfig({ env: {}, uid: 0, ...options });

function problemsOf(options: LoadOptions): string[] {
  try {
    load(options);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).problems;
  }
  throw new Error('expected a ConfigError');
}

describe('configuration', () => {
  it('takes the file, then GATHER_* variables, then flags, each overriding the one before', () => {
    const configFile = file({
      bundle: 's3://from-file/prod',
      publicKey,
      exporter: 'elasticsearch',
      username: 'file-user',
      instanceId: 'file-id',
      concurrency: 2,
      elasticsearch: { url: 'https://file.example:9200' },
      schedule: { abuse: { everySec: 60 } },
    });
    const config = load({
      configFile,
      env: {
        GATHER_USERNAME: 'env-user',
        GATHER_INSTANCE_ID: 'env-id',
        GATHER_ES_URL: 'https://env.example:9200',
        GATHER_ABUSE_EVERY_SEC: '30',
      },
      flags: { 'instance-id': 'flag-id', 'abuse-every': '10' },
    });
    expect(config).toMatchObject({
      configFile,
      source: { kind: 's3', bucket: 'from-file', prefix: 'prod' },
      exporter: 'elasticsearch',
      username: 'env-user',
      instanceId: 'flag-id',
      concurrency: 2,
      elasticsearch: { url: 'https://env.example:9200' },
    });
    expect(config.schedule.abuse).toEqual({ enabled: true, everySec: 10, splayPct: 10, firstDelaySec: 30 });
    expect(config.schedule.analytics).toEqual({ enabled: true, everySec: 86400, splayPct: 10, firstDelaySec: 180 });
  });

  it('has the documented defaults: low priority checks, system dirs as root, per-user dirs otherwise, NDJSON on stdout', () => {
    const config = load({ flags: { bundle: '/srv/check.tar', 'public-key': publicKey } });
    expect(config).toMatchObject({
      source: { kind: 'file', path: '/srv/check.tar' },
      exporter: 'stdout',
      nice: 10,
      ionice: true,
      containment: 'auto',
      stateDir: '/var/lib/gather',
      spoolDir: '/var/spool/gather',
      graceSec: 30,
      lockWaitSec: 60,
      logLevel: 'info',
      category: 'all',
    });
    const user = load({ flags: { bundle: '/srv/check.tar', 'public-key': publicKey }, uid: 1000, home: '/home/alice' });
    expect(user).toMatchObject({ stateDir: '/home/alice/.local/state/gather', spoolDir: '/home/alice/.local/state/gather/spool' });
    expect(load({ flags: { bundle: 'x', 'public-key': publicKey, out: '/tmp/r.ndjson' } }).exporter).toBe('file');
  });

  it('takes the containment of checks from a flag or GATHER_CONTAINMENT, and refuses an unknown one', () => {
    expect(load({ flags: { bundle: 'x', 'public-key': publicKey, containment: 'pgroup' } }).containment).toBe('pgroup');
    expect(load({ env: { GATHER_CONTAINMENT: 'cgroup' }, flags: { bundle: 'x', 'public-key': publicKey } }).containment).toBe('cgroup');
    expect(problemsOf({ env: { GATHER_CONTAINMENT: 'pidns' }, flags: { bundle: 'x', 'public-key': publicKey } })).toEqual([
      'containment: GATHER_CONTAINMENT must be one of auto, cgroup, pgroup (got "pidns")',
    ]);
  });

  it('lists every problem at once, each as "path: message" naming where the value came from', () => {
    const configFile = file({
      bundle: 'https://example.com/check.tar',
      nice: 25,
      schedule: { abuse: { everySec: 'often' } },
      colour: 'blue',
    });
    const problems = problemsOf({
      configFile,
      env: { GATHER_EXPORTER: 'kafka', GATHER_LOG_LEVEL: 'loud', GATHER_IONICE: 'maybe' },
      flags: { concurrency: '0' },
    });
    expect(problems).toEqual([
      `colour: unknown setting (in ${configFile}); see the README's configuration table`,
      `bundle: "bundle" in ${configFile} "https://example.com/check.tar" has an unsupported scheme: use file:/path or s3://bucket/prefix`,
      `publicKey: Missing --public-key <file> (or GATHER_PUBLIC_KEY, or "publicKey" in ${configFile}): every bundle is verified`,
      'exporter: GATHER_EXPORTER must be one of file, stdout, elasticsearch (got "kafka")',
      `schedule.abuse.everySec: "schedule.abuse.everySec" in ${configFile} must be a number of seconds from 1 to 31622400 (got "often"); set it within that range`,
      'concurrency: --concurrency must be a positive integer (got "0")',
      `nice: "nice" in ${configFile} must be an integer from 0 to 19 (got 25)`,
      'ionice: GATHER_IONICE must be true or false (got "maybe")',
      'logLevel: GATHER_LOG_LEVEL must be one of trace, debug, info, warn, error, fatal, silent (got "loud")',
    ]);
  });

  it('requires a public key for every bundle, remote or local: there is no unsigned mode', () => {
    expect(problemsOf({ flags: { bundle: 's3://bucket/prod' } })).toEqual([expect.stringMatching(/^publicKey: Missing --public-key/)]);
    expect(problemsOf({ flags: { bundle: '/srv/check.tar' } })).toEqual([expect.stringMatching(/^publicKey: Missing --public-key/)]);
    expect(problemsOf({ flags: { bundle: 'x', 'public-key': join(dir, 'nope.pem') } })).toEqual([
      expect.stringMatching(/^publicKey: Cannot read the public key file .*nope\.pem \(ENOENT\) named by --public-key$/),
    ]);
    const notAKey = secretFile('not-a-key.pem', 'hello');
    expect(problemsOf({ flags: { bundle: 'x', 'public-key': notAKey } })).toEqual([expect.stringMatching(/^publicKey: .*not-a-key\.pem/)]);
  });

  it('reads secrets from files so they never sit in the environment, and collects them for redaction', () => {
    const config = load({
      env: {
        GATHER_BUNDLE: 's3://b/p',
        GATHER_PUBLIC_KEY: publicKey,
        GATHER_EXPORTER: 'elasticsearch',
        GATHER_ES_URL: 'https://es.example:9200',
        GATHER_ES_USERNAME: 'gather',
        GATHER_ES_PASSWORD_FILE: secretFile('es-password', 'hunter2-secret\n'),
      },
    });
    expect(config.elasticsearch).toMatchObject({ username: 'gather', password: 'hunter2-secret' });
    expect(config.secrets).toEqual(['hunter2-secret', 'gather:hunter2-secret']);
    const apiKey = load({
      env: {
        GATHER_BUNDLE: 'x',
        GATHER_PUBLIC_KEY: publicKey,
        GATHER_EXPORTER: 'elasticsearch',
        GATHER_ES_URL: 'https://es:9200',
        GATHER_ES_API_KEY_FILE: secretFile('api-key', 'a2V5LWlk'),
      },
    });
    expect(apiKey.elasticsearch).toMatchObject({ apiKey: 'a2V5LWlk' });
  });

  it('a secret set in the environment overrides one from a file in the config file; two at one level are a problem', () => {
    const configFile = file({ elasticsearch: { passwordFile: secretFile('pw', 'from-file') } });
    const base = {
      GATHER_BUNDLE: 'x',
      GATHER_PUBLIC_KEY: publicKey,
      GATHER_EXPORTER: 'elasticsearch',
      GATHER_ES_URL: 'https://es:9200',
      GATHER_ES_USERNAME: 'u',
    };
    expect(load({ configFile, env: { ...base, GATHER_ES_PASSWORD: 'from-env' } }).elasticsearch?.password).toBe('from-env');
    expect(problemsOf({ env: { ...base, GATHER_ES_PASSWORD: 'a', GATHER_ES_PASSWORD_FILE: secretFile('pw2', 'b') } })).toEqual([
      'elasticsearch.password: set either GATHER_ES_PASSWORD or GATHER_ES_PASSWORD_FILE, not both',
    ]);
  });

  it('checks the exporter settings the chosen exporter needs', () => {
    const base = { GATHER_BUNDLE: 'x', GATHER_PUBLIC_KEY: publicKey };
    expect(problemsOf({ env: { ...base, GATHER_EXPORTER: 'elasticsearch' } })).toEqual([
      expect.stringMatching(/^elasticsearch\.url: the elasticsearch exporter needs --es-url/),
    ]);
    expect(problemsOf({ env: { ...base, GATHER_EXPORTER: 'elasticsearch', GATHER_ES_URL: 'es:9200' } })).toEqual([
      'elasticsearch.url: GATHER_ES_URL must be an http(s) URL such as https://es.example.com:9200',
    ]);
    expect(
      problemsOf({
        env: {
          ...base,
          GATHER_EXPORTER: 'elasticsearch',
          GATHER_ES_URL: 'https://es:9200',
          GATHER_ES_API_KEY: 'k',
          GATHER_ES_USERNAME: 'u',
        },
      }),
    ).toEqual([
      'elasticsearch.apiKey: use either an API key or a username and password, not both',
      'elasticsearch.password: a username is set but no password (GATHER_ES_PASSWORD_FILE or GATHER_ES_PASSWORD)',
    ]);
    expect(problemsOf({ env: { ...base, GATHER_EXPORTER: 'file' } })).toEqual([
      expect.stringMatching(/^out: the file exporter needs --out <file>/),
    ]);
    // GATHER_ES_* set for another purpose do not matter when the exporter is not elasticsearch.
    expect(load({ env: { ...base, GATHER_ES_URL: 'not a url' } }).elasticsearch).toBeUndefined();
  });

  it('rejects a file that is not JSON, and a named file that does not exist; the default file is optional', () => {
    const broken = file('{ "bundle": ');
    expect(problemsOf({ configFile: broken, flags: { bundle: 'x', 'public-key': publicKey } })).toEqual([
      expect.stringMatching(new RegExp(`^${broken}: not valid JSON`)),
    ]);
    const missing = join(dir, 'absent.json');
    expect(problemsOf({ configFile: missing, flags: { bundle: 'x', 'public-key': publicKey } })).toEqual([
      `${missing}: cannot read the configuration file (ENOENT)`,
    ]);
    expect(problemsOf({ env: { GATHER_CONFIG: missing }, flags: { bundle: 'x', 'public-key': publicKey } })).toHaveLength(1);
    // Without --config nor GATHER_CONFIG, /etc/gather/agent.json is read only if it exists (not on this machine).
    expect(load({ flags: { bundle: 'x', 'public-key': publicKey } }).configFile).toBeUndefined();
  });

  it.each([
    ['file:/srv/check.tar', { kind: 'file', path: '/srv/check.tar' }],
    ['/srv/check.tar', { kind: 'file', path: '/srv/check.tar' }],
    ['s3://bucket/gather/prod/', { kind: 's3', bucket: 'bucket', prefix: 'gather/prod' }],
    ['s3://bucket/gather/v1.tar', { kind: 's3', bucket: 'bucket', key: 'gather/v1.tar' }],
    ['s3://bucket', 'has no prefix: use s3://bucket/prefix (the agent follows <prefix>/latest)'],
    ['s3:///prefix', 'has no bucket: use s3://bucket/prefix'],
  ])('bundle source %s', (text, expected) => {
    expect(parseBundleSource(text)).toEqual(expected);
  });
});

describe('gather-agent with a broken configuration', () => {
  it('prints every problem and a pointer to --help, exit 2, and runs nothing', async () => {
    const configFile = file({ bundle: 's3://b/p', exporter: 'elasticsearch', schedule: { analytics: { splayPct: 300 } } });
    const result = await agent(['daemon', '--config', configFile], { env: cleanEnv({ GATHER_NICE: '-3' }) });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('gather-agent: Invalid configuration (4 problems):');
    expect(result.stderr).toContain('  publicKey: Missing --public-key');
    expect(result.stderr).toContain('  elasticsearch.url: the elasticsearch exporter needs --es-url');
    expect(result.stderr).toContain(
      `  schedule.analytics.splayPct: "schedule.analytics.splayPct" in ${configFile} must be a number of percent from 0 to 100 (got 300); set it within that range`,
    );
    expect(result.stderr).toContain('  nice: GATHER_NICE must be an integer from 0 to 19 (got "-3")');
    expect(result.stderr).toMatch(/\nRun "gather-agent daemon --help" for the options\.\n$/);
    expect(result.stderr).not.toMatch(/Usage: gather-agent daemon/);
  });
});

describe('durations', () => {
  it('takes the longest documented values as they are', () => {
    const config = load({
      flags: {
        bundle: 'x',
        'public-key': publicKey,
        timeout: '3600',
        grace: '3600',
        'lock-wait': '86400',
        'analytics-every': String(366 * 86400),
      },
      env: { GATHER_ANALYTICS_FIRST_DELAY_SEC: String(366 * 86400), GATHER_ANALYTICS_SPLAY_PCT: '100' },
    });
    expect(config).toMatchObject({ timeoutSec: 3600, graceSec: 3600, lockWaitSec: 86400 });
    expect(config.schedule.analytics).toMatchObject({ everySec: 366 * 86400, firstDelaySec: 366 * 86400, splayPct: 100 });
  });

  it('refuses every duration outside its range through the CLI: exit 2, each naming the setting, the range and the fix', async () => {
    const result = await agent(
      ['daemon', '--bundle', 'x', '--public-key', publicKey, '--timeout', '7200', '--grace', '99999', '--abuse-every', '0'],
      {
        env: cleanEnv({
          GATHER_ANALYTICS_EVERY_SEC: String(400 * 86400),
          GATHER_ANALYTICS_FIRST_DELAY_SEC: '1e12',
          GATHER_ABUSE_SPLAY_PCT: '101',
          GATHER_LOCK_WAIT_SEC: '-1',
        }),
      },
    );
    expect(result.code).toBe(2);
    for (const line of [
      'timeoutSec: --timeout must be a whole number of seconds from 1 to 3600 (got "7200"); set it within that range',
      'graceSec: --grace must be a number of seconds from 0 to 3600 (got "99999")',
      'lockWaitSec: GATHER_LOCK_WAIT_SEC must be a number of seconds from 0 to 86400 (got "-1")',
      'schedule.abuse.everySec: --abuse-every must be a number of seconds from 1 to 31622400 (got "0")',
      'schedule.abuse.splayPct: GATHER_ABUSE_SPLAY_PCT must be a number of percent from 0 to 100 (got "101")',
      'schedule.analytics.everySec: GATHER_ANALYTICS_EVERY_SEC must be a number of seconds from 1 to 31622400 (got "34560000")',
      'schedule.analytics.firstDelaySec: GATHER_ANALYTICS_FIRST_DELAY_SEC must be a number of seconds from 0 to 31622400 (got "1e12")',
    ]) {
      expect(result.stderr).toContain(line);
    }
    expect(result.stderr).toContain('Invalid configuration (7 problems)');
  });
});
