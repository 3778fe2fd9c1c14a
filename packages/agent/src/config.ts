/**
 * The agent's configuration: a JSON file (`/etc/gather/agent.json` or `--config`), then `GATHER_*`
 * environment variables, then command-line flags, each overriding the one before (config-sources.ts). Every
 * setting is described once in settings.ts; here the values are assembled into an AgentConfig. Every problem
 * is collected and reported at once as `path: message`, so a broken file is fixed in one go.
 */
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { CATEGORIES, CONTAINMENT_MODES, ConfigError, rootOwnershipProblem, type Category, type ContainmentMode } from '@gather/core';
import { loadCheckSettings } from './check-settings.js';
import { loadBundleSettings, type BundleSource } from './config-bundle.js';
import { loadEsConfig, type EsConfig } from './config-elasticsearch.js';
import { mergeSources, parseHttpUrl, readConfigFile, SettingValues, type Flags } from './config-sources.js';
import { environmentSecrets } from './secrets.js';
import {
  DEFAULT_CONFIG_FILE,
  EXPORTERS,
  LOG_LEVELS,
  RESULTS_MODES,
  type ExporterKind,
  type LogLevel,
  type ResultsMode,
} from './settings.js';

export {
  DEFAULT_CONFIG_FILE,
  EXPORTERS,
  LOG_LEVELS,
  RESULTS_MODES,
  SCHEDULE_DEFAULTS,
  SETTINGS,
  type ExporterKind,
  type LogLevel,
  type ResultsMode,
} from './settings.js';
export { parseBundleSource, type BundleSource } from './config-bundle.js';
export type { EsConfig } from './config-elasticsearch.js';
export type { Flags } from './config-sources.js';

export interface ScheduleConfig {
  /** Run this category (default true). */
  enabled: boolean;
  everySec: number;
  /** Each run starts up to this share of the interval late (random), so a fleet spreads out. */
  splayPct: number;
  /** The first run comes this long after start (plus a jitter of up to min(splay, firstDelaySec)). */
  firstDelaySec: number;
}

export interface AgentConfig {
  /** The file that was read, if any. */
  configFile: string | undefined;
  /** The bundle source as written (`file:/path`, a path or `s3://bucket/prefix`). */
  bundle: string;
  source: BundleSource;
  publicKeyPath: string;
  /** PEM of the public key, read and parsed while loading. */
  publicKey: string;
  exporter: ExporterKind;
  /** NDJSON destination of the file exporter. */
  out: string | undefined;
  /** True when `out` came from a flag (a one-off destination, truncated) rather than the shared configuration (appended). */
  outFromFlag: boolean;
  elasticsearch: EsConfig | undefined;
  s3: { endpoint?: string; region?: string };
  category: Category | 'all';
  username: string | undefined;
  instanceId: string | undefined;
  /** ECS `host.id`; undefined: /etc/machine-id. */
  hostId: string | undefined;
  results: ResultsMode;
  snapshotIntervalSec: number;
  concurrency: number | undefined;
  timeoutSec: number | undefined;
  nice: number;
  ionice: boolean;
  /** How checks are contained: `auto` (a cgroup where possible, else process groups), `cgroup` or `pgroup`. */
  containment: ContainmentMode;
  stateDir: string;
  spoolDir: string;
  /** Bound of the Elasticsearch spool on disk; the exporter's default when unset. */
  spoolMaxBytes: number | undefined;
  schedule: Record<Category, ScheduleConfig>;
  graceSec: number;
  lockWaitSec: number;
  logLevel: LogLevel;
  /** Tuning values for the checks, passed to each as `GATHER_<NAME>` (file `checkSettings`, env `GATHER_CHECK_<NAME>`). */
  checkSettings: Record<string, string>;
  /** Every credential value, for redaction of logs and messages. */
  secrets: string[];
}

export interface LoadOptions {
  /** `--config`; default GATHER_CONFIG, else /etc/gather/agent.json when it exists. */
  configFile?: string;
  env?: NodeJS.ProcessEnv;
  flags?: Flags;
  /** Default log level when none is configured (the daemon logs more than a one-off run). */
  defaultLogLevel?: LogLevel;
  /** Only what reading a bundle needs (`verify`): exporter settings are not checked. */
  bundleOnly?: boolean;
  /** For tests: the uid deciding the default state/spool dirs. */
  uid?: number;
  /** For tests: the effective uid; as root (0) every path setting must be root's alone. */
  euid?: number;
  home?: string;
}

/** The default directories: system ones for root, per-user ones otherwise (`pnpm demo` as a developer). */
export function defaultDirs(uid: number, home: string, env: NodeJS.ProcessEnv): { stateDir: string; spoolDir: string } {
  if (uid === 0) return { stateDir: '/var/lib/gather', spoolDir: '/var/spool/gather' };
  const state = join(env.XDG_STATE_HOME || join(home, '.local', 'state'), 'gather');
  return { stateDir: state, spoolDir: join(state, 'spool') };
}

/** Loads, merges and validates the configuration; throws a ConfigError listing every problem. */
export function loadConfig(options: LoadOptions = {}): AgentConfig {
  const env = options.env ?? process.env;
  const problems: string[] = [];
  const euid = options.euid ?? process.geteuid?.();
  /** As root: the path and every directory above it must be root's and writable by no one else. */
  const trusted = (key: string, path: string, what: string): boolean => {
    const problem = rootOwnershipProblem(path, what, euid);
    if (problem) problems.push(`${key}: ${problem}`);
    return problem === undefined;
  };

  const explicitFile = options.configFile ?? (env.GATHER_CONFIG || undefined);
  const configFile = explicitFile ?? DEFAULT_CONFIG_FILE;
  const file = readConfigFile(configFile, explicitFile !== undefined, trusted, problems);
  const values = new SettingValues(mergeSources(file.values, configFile, env, options.flags ?? {}, problems), problems);

  const { bundle, source, publicKeyPath, publicKey } = loadBundleSettings(values, configFile, problems, trusted);

  const category = values.choice('category', [...CATEGORIES, 'all'] as const) ?? 'all';
  const out = values.string('out');
  const exporterSetting = values.choice('exporter', EXPORTERS);
  let exporter: ExporterKind = exporterSetting ?? (out !== undefined && out !== '-' ? 'file' : 'stdout');
  if (options.bundleOnly) exporter = 'stdout';
  if (exporter === 'file' && (out === undefined || out === '-')) {
    if (out === '-') exporter = 'stdout';
    else problems.push(`out: the file exporter needs --out <file> (or GATHER_OUT, or "out" in ${configFile})`);
  }

  // The settings of an adapter that is not selected are not read (nor refused).
  const secrets: string[] = [];
  const elasticsearch = exporter === 'elasticsearch' ? loadEsConfig({ values, env, configFile, problems, trusted, secrets }) : undefined;

  const s3Endpoint = values.string('s3.endpoint');
  if (s3Endpoint !== undefined && !parseHttpUrl(s3Endpoint)) {
    problems.push(`s3.endpoint: ${values.where('s3.endpoint')} must be an http(s) URL such as https://s3.example.com:9000`);
  }
  const s3Region = values.string('s3.region');

  // Each category's defaults are its settings' defaults (settings.ts).
  const schedule = {} as Record<Category, ScheduleConfig>;
  for (const c of CATEGORIES) {
    schedule[c] = {
      enabled: values.boolean(`schedule.${c}.enabled`)!,
      everySec: values.number(`schedule.${c}.everySec`)!,
      splayPct: values.number(`schedule.${c}.splayPct`)!,
      firstDelaySec: values.number(`schedule.${c}.firstDelaySec`)!,
    };
  }

  const dirs = defaultDirs(options.uid ?? process.getuid?.() ?? 0, options.home ?? homedir(), env);
  const stateDir = resolve(values.string('stateDir') ?? dirs.stateDir);
  const spoolDir = resolve(values.string('spoolDir') ?? dirs.spoolDir);
  trusted('stateDir', stateDir, 'the state directory');
  trusted('spoolDir', spoolDir, 'the spool directory');
  secrets.push(...environmentSecrets(env, options.home ?? homedir()));
  const config = {
    configFile: file.read,
    bundle: bundle ?? '',
    source: source!,
    publicKeyPath: publicKeyPath ?? '',
    publicKey: publicKey ?? '',
    exporter,
    out: out === '-' ? undefined : out,
    outFromFlag: values.origin('out')?.kind === 'flag',
    elasticsearch,
    s3: { ...(s3Endpoint ? { endpoint: s3Endpoint } : {}), ...(s3Region ? { region: s3Region } : {}) },
    category,
    username: values.string('username'),
    instanceId: values.string('instanceId'),
    hostId: values.string('hostId'),
    // Differential where volume matters (Elasticsearch); NDJSON one-offs (pnpm demo, --out) get every result.
    results: values.choice('results', RESULTS_MODES) ?? (exporter === 'elasticsearch' ? 'differential' : 'snapshot'),
    snapshotIntervalSec: values.number('snapshotIntervalSec')!,
    concurrency: values.number('concurrency'),
    timeoutSec: values.number('timeoutSec'),
    nice: values.number('nice')!,
    ionice: values.boolean('ionice')!,
    containment: values.choice('containment', CONTAINMENT_MODES)!,
    stateDir,
    spoolDir,
    spoolMaxBytes: values.number('spoolMaxBytes'),
    schedule,
    graceSec: values.number('graceSec')!,
    lockWaitSec: values.number('lockWaitSec')!,
    logLevel: values.choice('logLevel', LOG_LEVELS) ?? options.defaultLogLevel ?? 'info',
    checkSettings: loadCheckSettings(file.values.get('checkSettings'), configFile, env, problems),
    secrets,
  } satisfies AgentConfig;

  if (problems.length > 0) {
    throw new ConfigError(
      `Invalid configuration (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n${problems.map((p) => `  ${p}`).join('\n')}`,
      {
        problems,
      },
    );
  }
  return config;
}

/** The configuration as logged: secrets and key material left out. */
export function describeConfig(config: AgentConfig): Record<string, unknown> {
  const { publicKey: _publicKey, secrets: _secrets, elasticsearch, ...rest } = config;
  return {
    ...rest,
    ...(elasticsearch
      ? {
          elasticsearch: {
            url: elasticsearch.url,
            auth: elasticsearch.apiKey ? 'api key' : elasticsearch.username ? `user ${elasticsearch.username}` : 'none',
            ...(elasticsearch.caFile ? { caFile: elasticsearch.caFile } : {}),
            ...(elasticsearch.resultsIndex ? { resultsIndex: elasticsearch.resultsIndex } : {}),
            ...(elasticsearch.errorsIndex ? { errorsIndex: elasticsearch.errorsIndex } : {}),
            ...(elasticsearch.runsIndex ? { runsIndex: elasticsearch.runsIndex } : {}),
            ...(elasticsearch.indexSettings ? { indexSettings: elasticsearch.indexSettings } : {}),
          },
        }
      : {}),
  };
}
