/**
 * The agent's configuration: a JSON file (`/etc/gather/agent.json` or `--config`), then `GATHER_*`
 * environment variables, then command-line flags, each overriding the one before. Every problem is collected
 * and reported at once as `path: message`, so a broken file is fixed in one go.
 */
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  CATEGORIES,
  CHECK_SETTING_NAME,
  CONTAINMENT_MODES,
  ConfigError,
  DURATION_RANGES,
  durationProblem,
  isGatherError,
  parsePublicKey,
  rootOwnershipProblem,
  type Category,
  type ContainmentMode,
  type DurationRange,
} from '@gather/core';
import { credentialPath, CREDENTIALS, environmentSecrets } from './secrets.js';

export const DEFAULT_CONFIG_FILE = '/etc/gather/agent.json';

export type ExporterKind = 'file' | 'stdout' | 'elasticsearch';
export const EXPORTERS: readonly ExporterKind[] = ['file', 'stdout', 'elasticsearch'];
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';
export const LOG_LEVELS: readonly LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

export type BundleSource =
  | { kind: 'file'; path: string }
  /** `s3://bucket/prefix` follows `<prefix>/latest`; `s3://bucket/key.tar` names one object. */
  | { kind: 's3'; bucket: string; prefix?: string; key?: string };

/** `differential`: only added/changed/removed results between full snapshots; `snapshot`: every result, every run. */
export type ResultsMode = 'differential' | 'snapshot';
export const RESULTS_MODES: readonly ResultsMode[] = ['differential', 'snapshot'];

export interface ScheduleConfig {
  /** Run this category (default true). */
  enabled: boolean;
  everySec: number;
  /** Each run starts up to this share of the interval late (random), so a fleet spreads out. */
  splayPct: number;
  /** The first run comes this long after start (plus a jitter of up to min(splay, firstDelaySec)). */
  firstDelaySec: number;
}

export interface EsConfig {
  url: string;
  apiKey?: string;
  username?: string;
  password?: string;
  /** PEM of the CA, read from `caFile`. */
  ca?: string;
  caFile?: string;
  resultsIndex?: string;
  errorsIndex?: string;
  runsIndex?: string;
  latestIndex?: string;
  hostsIndex?: string;
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

/** Where a value came from, for messages. */
type Origin = { kind: 'file'; file: string; key: string } | { kind: 'env'; name: string } | { kind: 'flag'; name: string };

interface Setting {
  /** Path in the JSON file, e.g. `elasticsearch.url`. */
  key: string;
  env?: string;
  flag?: string;
  type: 'string' | 'number' | 'boolean';
}

/** Every setting, its file key, environment variable and flag. Secrets have no flag: argv is visible in `ps`. */
export const SETTINGS: readonly Setting[] = [
  { key: 'bundle', env: 'GATHER_BUNDLE', flag: 'bundle', type: 'string' },
  { key: 'publicKey', env: 'GATHER_PUBLIC_KEY', flag: 'public-key', type: 'string' },
  { key: 'exporter', env: 'GATHER_EXPORTER', flag: 'exporter', type: 'string' },
  { key: 'out', env: 'GATHER_OUT', flag: 'out', type: 'string' },
  { key: 'category', env: 'GATHER_CATEGORY', flag: 'category', type: 'string' },
  { key: 'username', env: 'GATHER_USERNAME', flag: 'username', type: 'string' },
  { key: 'instanceId', env: 'GATHER_INSTANCE_ID', flag: 'instance-id', type: 'string' },
  { key: 'hostId', env: 'GATHER_HOST_ID', flag: 'host-id', type: 'string' },
  { key: 'results', env: 'GATHER_RESULTS', flag: 'results', type: 'string' },
  { key: 'snapshotIntervalSec', env: 'GATHER_SNAPSHOT_INTERVAL_SEC', flag: 'snapshot-interval', type: 'number' },
  { key: 'concurrency', env: 'GATHER_CONCURRENCY', flag: 'concurrency', type: 'number' },
  { key: 'timeoutSec', env: 'GATHER_TIMEOUT', flag: 'timeout', type: 'number' },
  { key: 'nice', env: 'GATHER_NICE', flag: 'nice', type: 'number' },
  { key: 'ionice', env: 'GATHER_IONICE', flag: 'ionice', type: 'boolean' },
  { key: 'containment', env: 'GATHER_CONTAINMENT', flag: 'containment', type: 'string' },
  { key: 'stateDir', env: 'GATHER_STATE_DIR', flag: 'state-dir', type: 'string' },
  { key: 'spoolDir', env: 'GATHER_SPOOL_DIR', flag: 'spool-dir', type: 'string' },
  { key: 'spoolMaxBytes', env: 'GATHER_SPOOL_MAX_BYTES', type: 'number' },
  { key: 'graceSec', env: 'GATHER_GRACE_SEC', flag: 'grace', type: 'number' },
  { key: 'lockWaitSec', env: 'GATHER_LOCK_WAIT_SEC', flag: 'lock-wait', type: 'number' },
  { key: 'logLevel', env: 'GATHER_LOG_LEVEL', flag: 'log-level', type: 'string' },
  { key: 'elasticsearch.url', env: 'GATHER_ES_URL', flag: 'es-url', type: 'string' },
  { key: 'elasticsearch.apiKey', env: 'GATHER_ES_API_KEY', type: 'string' },
  { key: 'elasticsearch.apiKeyFile', env: 'GATHER_ES_API_KEY_FILE', flag: 'es-api-key-file', type: 'string' },
  { key: 'elasticsearch.username', env: 'GATHER_ES_USERNAME', flag: 'es-username', type: 'string' },
  { key: 'elasticsearch.password', env: 'GATHER_ES_PASSWORD', type: 'string' },
  { key: 'elasticsearch.passwordFile', env: 'GATHER_ES_PASSWORD_FILE', flag: 'es-password-file', type: 'string' },
  { key: 'elasticsearch.caFile', env: 'GATHER_ES_CA_FILE', flag: 'es-ca-file', type: 'string' },
  { key: 'elasticsearch.resultsIndex', env: 'GATHER_ES_RESULTS_INDEX', type: 'string' },
  { key: 'elasticsearch.errorsIndex', env: 'GATHER_ES_ERRORS_INDEX', type: 'string' },
  { key: 'elasticsearch.runsIndex', env: 'GATHER_ES_RUNS_INDEX', type: 'string' },
  { key: 'elasticsearch.latestIndex', env: 'GATHER_ES_LATEST_INDEX', type: 'string' },
  { key: 'elasticsearch.hostsIndex', env: 'GATHER_ES_HOSTS_INDEX', type: 'string' },
  { key: 's3.endpoint', env: 'GATHER_S3_ENDPOINT', flag: 's3-endpoint', type: 'string' },
  { key: 's3.region', env: 'GATHER_S3_REGION', flag: 's3-region', type: 'string' },
  ...CATEGORIES.flatMap((c): Setting[] => [
    { key: `schedule.${c}.enabled`, type: 'boolean' },
    { key: `schedule.${c}.everySec`, env: `GATHER_${c.toUpperCase()}_EVERY_SEC`, flag: `${c}-every`, type: 'number' },
    { key: `schedule.${c}.splayPct`, env: `GATHER_${c.toUpperCase()}_SPLAY_PCT`, type: 'number' },
    { key: `schedule.${c}.firstDelaySec`, env: `GATHER_${c.toUpperCase()}_FIRST_DELAY_SEC`, type: 'number' },
  ]),
];

export const SCHEDULE_DEFAULTS: Record<Category, ScheduleConfig> = {
  abuse: { enabled: true, everySec: 15 * 60, splayPct: 10, firstDelaySec: 30 },
  analytics: { enabled: true, everySec: 24 * 60 * 60, splayPct: 10, firstDelaySec: 180 },
};

export const DEFAULTS = { nice: 10, ionice: true, graceSec: 30, lockWaitSec: 60 } as const;

/** Flags as parsed from the command line (only the ones given). */
export type Flags = Record<string, string | boolean | undefined>;

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

function describeOrigin(origin: Origin): string {
  if (origin.kind === 'flag') return `--${origin.name}`;
  if (origin.kind === 'env') return origin.name;
  return `"${origin.key}" in ${origin.file}`;
}

/** The default directories: system ones for root, per-user ones otherwise (`pnpm demo` as a developer). */
export function defaultDirs(uid: number, home: string, env: NodeJS.ProcessEnv): { stateDir: string; spoolDir: string } {
  if (uid === 0) return { stateDir: '/var/lib/gather', spoolDir: '/var/spool/gather' };
  const state = join(env.XDG_STATE_HOME || join(home, '.local', 'state'), 'gather');
  return { stateDir: state, spoolDir: join(state, 'spool') };
}

/** Parses `file:/path`, a plain path or `s3://bucket/prefix` (a key ending in `.tar` names one object). */
export function parseBundleSource(text: string): BundleSource | string {
  if (text.startsWith('s3://')) {
    const rest = text.slice('s3://'.length);
    const slash = rest.indexOf('/');
    const bucket = slash < 0 ? rest : rest.slice(0, slash);
    const path = slash < 0 ? '' : rest.slice(slash + 1).replace(/\/+$/, '');
    if (!bucket) return 'has no bucket: use s3://bucket/prefix';
    if (!path) return 'has no prefix: use s3://bucket/prefix (the agent follows <prefix>/latest)';
    return path.endsWith('.tar') ? { kind: 's3', bucket, key: path } : { kind: 's3', bucket, prefix: path };
  }
  if (text.startsWith('file:')) {
    const path = text.slice('file:'.length).replace(/^\/\/(?=\/)/, '');
    if (!path) return 'has no path: use file:/path/to/check.tar';
    return { kind: 'file', path: resolve(path) };
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(text)) return `has an unsupported scheme: use file:/path or s3://bucket/prefix`;
  return { kind: 'file', path: resolve(text) };
}

/** Flattens the JSON file to `a.b.c` keys; reports unknown keys and wrong types. */
function flattenFile(data: unknown, file: string, problems: string[]): Map<string, unknown> {
  const out = new Map<string, unknown>();
  const known = new Map(SETTINGS.map((s) => [s.key, s]));
  const sections = new Set(SETTINGS.flatMap((s) => s.key.split('.').slice(0, -1).map((_, i, parts) => parts.slice(0, i + 1).join('.'))));
  const walk = (value: unknown, prefix: string) => {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      problems.push(`${prefix || '(top level)'}: must be an object (in ${file})`);
      return;
    }
    for (const [name, item] of Object.entries(value)) {
      const key = prefix ? `${prefix}.${name}` : name;
      if (key === 'checkSettings') out.set(key, item);
      else if (sections.has(key)) walk(item, key);
      else if (known.has(key)) out.set(key, item);
      else problems.push(`${key}: unknown setting (in ${file}); see the README's configuration table`);
    }
  };
  walk(data, '');
  return out;
}

interface Raw {
  value: string | number | boolean;
  origin: Origin;
}

/** Loads, merges and validates the configuration; throws a ConfigError listing every problem. */
export function loadConfig(options: LoadOptions = {}): AgentConfig {
  const env = options.env ?? process.env;
  const flags = options.flags ?? {};
  const problems: string[] = [];
  const euid = options.euid ?? process.geteuid?.();
  /** As root: the path and every directory above it must be root's and writable by no one else. */
  const trusted = (key: string, path: string, what: string): boolean => {
    const problem = rootOwnershipProblem(path, what, euid);
    if (problem) problems.push(`${key}: ${problem}`);
    return problem === undefined;
  };

  // 1. The file.
  const explicitFile = options.configFile ?? (env.GATHER_CONFIG || undefined);
  const configFile = explicitFile ?? DEFAULT_CONFIG_FILE;
  let fileValues = new Map<string, unknown>();
  let fileRead: string | undefined;
  let text: string | undefined;
  try {
    text = readFileSync(configFile, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    // The default file is optional (environment and flags may say everything); a named one is not.
    if (explicitFile !== undefined || code !== 'ENOENT') problems.push(`${configFile}: cannot read the configuration file (${code})`);
  }
  if (text !== undefined && !trusted('config', configFile, 'the configuration file')) text = undefined;
  if (text !== undefined) {
    fileRead = configFile;
    try {
      fileValues = flattenFile(JSON.parse(text), configFile, problems);
    } catch (error) {
      problems.push(`${configFile}: not valid JSON (${(error as Error).message})`);
    }
  }

  // 2. Merge: file < env < flags.
  const raw = new Map<string, Raw>();
  for (const setting of SETTINGS) {
    const flag = setting.flag ? flags[setting.flag] : undefined;
    const envValue = setting.env ? env[setting.env] : undefined;
    if (flag !== undefined && flag !== '') raw.set(setting.key, { value: flag, origin: { kind: 'flag', name: setting.flag! } });
    else if (envValue !== undefined && envValue !== '') raw.set(setting.key, { value: envValue, origin: { kind: 'env', name: setting.env! } });
    else if (fileValues.has(setting.key)) {
      const value = fileValues.get(setting.key);
      const origin: Origin = { kind: 'file', file: configFile, key: setting.key };
      if (value === null || value === undefined) continue;
      if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') {
        problems.push(`${setting.key}: ${describeOrigin(origin)} must be a ${setting.type}`);
        continue;
      }
      raw.set(setting.key, { value, origin });
    }
  }

  const str = (key: string): string | undefined => {
    const r = raw.get(key);
    if (!r) return undefined;
    if (typeof r.value !== 'string') {
      problems.push(`${key}: ${describeOrigin(r.origin)} must be a string (got ${JSON.stringify(r.value)})`);
      return undefined;
    }
    return r.value;
  };
  const num = (key: string, what: { integer?: boolean; min: number; max?: number; label: string }): number | undefined => {
    const r = raw.get(key);
    if (!r) return undefined;
    const n = typeof r.value === 'number' ? r.value : typeof r.value === 'string' && r.value.trim() !== '' ? Number(r.value) : NaN;
    if (!Number.isFinite(n) || n < what.min || (what.max !== undefined && n > what.max) || (what.integer && !Number.isInteger(n))) {
      problems.push(`${key}: ${describeOrigin(r.origin)} must be ${what.label} (got ${JSON.stringify(r.value)})`);
      return undefined;
    }
    return n;
  };
  /** A duration (or splay) setting: within its range from core's one table, the same the bundler uses. */
  const duration = (key: string, range: DurationRange): number | undefined => {
    const r = raw.get(key);
    if (!r) return undefined;
    const n = typeof r.value === 'number' ? r.value : typeof r.value === 'string' && r.value.trim() !== '' ? Number(r.value) : NaN;
    const problem = durationProblem(n, range);
    if (problem === undefined) return n;
    problems.push(`${key}: ${describeOrigin(r.origin)} ${problem} (got ${JSON.stringify(r.value)}); set it within that range`);
    return undefined;
  };
  const bool = (key: string): boolean | undefined => {
    const r = raw.get(key);
    if (!r) return undefined;
    if (typeof r.value === 'boolean') return r.value;
    if (typeof r.value === 'string' && /^(true|1|yes|on)$/i.test(r.value)) return true;
    if (typeof r.value === 'string' && /^(false|0|no|off)$/i.test(r.value)) return false;
    problems.push(`${key}: ${describeOrigin(r.origin)} must be true or false (got ${JSON.stringify(r.value)})`);
    return undefined;
  };
  const oneOf = <T extends string>(key: string, allowed: readonly T[]): T | undefined => {
    const value = str(key);
    if (value === undefined) return undefined;
    if (!allowed.includes(value as T)) {
      problems.push(`${key}: ${describeOrigin(raw.get(key)!.origin)} must be one of ${allowed.join(', ')} (got "${value}")`);
      return undefined;
    }
    return value as T;
  };
  const readSecretFile = (key: string): string | undefined => {
    const path = str(key);
    if (path === undefined || !trusted(key, path, 'the secret file')) return undefined;
    try {
      return readFileSync(path, 'utf8').replace(/\r?\n$/, '');
    } catch (error) {
      problems.push(`${key}: cannot read ${path} named by ${describeOrigin(raw.get(key)!.origin)} (${(error as NodeJS.ErrnoException).code})`);
      return undefined;
    }
  };
  /** A secret given directly or as a file: the higher-precedence source wins; both at one level is a problem. */
  const secret = (key: string, fileKey: string): string | undefined => {
    const direct = raw.get(key);
    const viaFile = raw.get(fileKey);
    if (direct && viaFile) {
      const rank = (o: Origin) => (o.kind === 'flag' ? 2 : o.kind === 'env' ? 1 : 0);
      if (rank(direct.origin) === rank(viaFile.origin)) {
        problems.push(`${key}: set either ${describeOrigin(direct.origin)} or ${describeOrigin(viaFile.origin)}, not both`);
        return undefined;
      }
      return rank(direct.origin) > rank(viaFile.origin) ? str(key) : readSecretFile(fileKey);
    }
    return direct ? str(key) : readSecretFile(fileKey);
  };

  // 3. Validate and assemble.
  const bundle = str('bundle');
  let source: BundleSource | undefined;
  if (bundle === undefined) {
    problems.push(`bundle: Missing --bundle <path|file:/path|s3://bucket/prefix> (or GATHER_BUNDLE, or "bundle" in ${configFile})`);
  } else {
    const parsed = parseBundleSource(bundle);
    if (typeof parsed === 'string') problems.push(`bundle: ${describeOrigin(raw.get('bundle')!.origin)} "${bundle}" ${parsed}`);
    else source = parsed;
  }

  // Every bundle is verified: there is no unsigned mode, local or remote.
  const publicKeyPath = str('publicKey');
  let publicKey: string | undefined;
  if (publicKeyPath === undefined) {
    problems.push(`publicKey: Missing --public-key <file> (or GATHER_PUBLIC_KEY, or "publicKey" in ${configFile}): every bundle is verified`);
  } else if (trusted('publicKey', publicKeyPath, 'the public key')) {
    try {
      publicKey = readFileSync(publicKeyPath, 'utf8');
      parsePublicKey(publicKey, `public key file ${publicKeyPath}`);
    } catch (error) {
      // A file that cannot be read has an errno code; one that is not an ed25519 public key says so itself.
      const code = isGatherError(error) ? undefined : (error as NodeJS.ErrnoException).code;
      problems.push(
        code
          ? `publicKey: Cannot read the public key file ${publicKeyPath} (${code}) named by ${describeOrigin(raw.get('publicKey')!.origin)}`
          : `publicKey: ${(error as Error).message.replace(/^\[gather\] /, '')}`,
      );
      publicKey = undefined;
    }
  }

  const category = oneOf('category', [...CATEGORIES, 'all'] as const) ?? 'all';
  const out = str('out');
  const exporterSetting = oneOf('exporter', EXPORTERS);
  let exporter: ExporterKind = exporterSetting ?? (out !== undefined && out !== '-' ? 'file' : 'stdout');
  if (options.bundleOnly) exporter = 'stdout';
  if (exporter === 'file' && (out === undefined || out === '-')) {
    if (out === '-') exporter = 'stdout';
    else problems.push(`out: the file exporter needs --out <file> (or GATHER_OUT, or "out" in ${configFile})`);
  }

  let elasticsearch: EsConfig | undefined;
  const secrets: string[] = [];
  if (exporter === 'elasticsearch') {
    const url = str('elasticsearch.url');
    if (url === undefined) problems.push(`elasticsearch.url: the elasticsearch exporter needs --es-url (or GATHER_ES_URL, or "elasticsearch.url" in ${configFile})`);
    else {
      let parsed: URL | undefined;
      try {
        parsed = new URL(url);
      } catch {
        parsed = undefined;
      }
      if (!parsed || (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')) {
        problems.push(`elasticsearch.url: ${describeOrigin(raw.get('elasticsearch.url')!.origin)} must be an http(s) URL such as https://es.example.com:9200`);
      } else if (parsed.password) secrets.push(parsed.password, decodeURIComponent(parsed.password));
    }
    const username = str('elasticsearch.username');
    // Else systemd credentials (LoadCredential=es-api-key / es-password): files only the agent can read.
    const credential = (name: string): string | undefined => {
      const path = credentialPath(env, name);
      if (path === undefined) return undefined;
      try {
        return readFileSync(path, 'utf8').replace(/\r?\n$/, '');
      } catch (error) {
        problems.push(`elasticsearch: cannot read the systemd credential ${path} (${(error as NodeJS.ErrnoException).code})`);
        return undefined;
      }
    };
    const configured = (key: string) => raw.has(key) || raw.has(`${key}File`);
    const apiKey = configured('elasticsearch.apiKey')
      ? secret('elasticsearch.apiKey', 'elasticsearch.apiKeyFile')
      : username === undefined ? credential(CREDENTIALS.esApiKey) : undefined;
    const password = configured('elasticsearch.password')
      ? secret('elasticsearch.password', 'elasticsearch.passwordFile')
      : username !== undefined ? credential(CREDENTIALS.esPassword) : undefined;
    const passwordSet = configured('elasticsearch.password') || password !== undefined;
    if (apiKey !== undefined && (username !== undefined || passwordSet)) {
      problems.push('elasticsearch.apiKey: use either an API key or a username and password, not both');
    }
    if ((username === undefined) !== !passwordSet) {
      problems.push(
        username === undefined
          ? 'elasticsearch.username: a password is set but no username (GATHER_ES_USERNAME)'
          : 'elasticsearch.password: a username is set but no password (GATHER_ES_PASSWORD_FILE or GATHER_ES_PASSWORD)',
      );
    }
    const caFile = str('elasticsearch.caFile');
    let ca: string | undefined;
    if (caFile !== undefined && trusted('elasticsearch.caFile', caFile, 'the CA file')) {
      try {
        ca = readFileSync(caFile, 'utf8');
      } catch (error) {
        problems.push(`elasticsearch.caFile: cannot read ${caFile} (${(error as NodeJS.ErrnoException).code})`);
      }
    }
    for (const value of [apiKey, password]) if (value) secrets.push(value);
    if (username !== undefined && password) secrets.push(`${username}:${password}`);
    const resultsIndex = str('elasticsearch.resultsIndex');
    const errorsIndex = str('elasticsearch.errorsIndex');
    const runsIndex = str('elasticsearch.runsIndex');
    const latestIndex = str('elasticsearch.latestIndex');
    const hostsIndex = str('elasticsearch.hostsIndex');
    if (url !== undefined) {
      elasticsearch = {
        url,
        ...(apiKey !== undefined ? { apiKey } : {}),
        ...(username !== undefined ? { username } : {}),
        ...(password !== undefined ? { password } : {}),
        ...(caFile !== undefined ? { caFile } : {}),
        ...(ca !== undefined ? { ca } : {}),
        ...(resultsIndex ? { resultsIndex } : {}),
        ...(errorsIndex ? { errorsIndex } : {}),
        ...(runsIndex ? { runsIndex } : {}),
        ...(latestIndex ? { latestIndex } : {}),
        ...(hostsIndex ? { hostsIndex } : {}),
      };
    }
  }

  const s3Endpoint = str('s3.endpoint');
  if (s3Endpoint !== undefined && !/^https?:\/\/[^/]/.test(s3Endpoint)) {
    problems.push(`s3.endpoint: ${describeOrigin(raw.get('s3.endpoint')!.origin)} must be an http(s) URL such as https://s3.example.com:9000`);
  }
  const s3Region = str('s3.region');

  const schedule = {} as Record<Category, ScheduleConfig>;
  for (const c of CATEGORIES) {
    const d = SCHEDULE_DEFAULTS[c];
    schedule[c] = {
      enabled: bool(`schedule.${c}.enabled`) ?? d.enabled,
      everySec: duration(`schedule.${c}.everySec`, DURATION_RANGES.everySec) ?? d.everySec,
      splayPct: duration(`schedule.${c}.splayPct`, DURATION_RANGES.splayPct) ?? d.splayPct,
      firstDelaySec: duration(`schedule.${c}.firstDelaySec`, DURATION_RANGES.firstDelaySec) ?? d.firstDelaySec,
    };
  }

  const dirs = defaultDirs(options.uid ?? process.getuid?.() ?? 0, options.home ?? homedir(), env);
  const stateDir = resolve(str('stateDir') ?? dirs.stateDir);
  const spoolDir = resolve(str('spoolDir') ?? dirs.spoolDir);
  trusted('stateDir', stateDir, 'the state directory');
  trusted('spoolDir', spoolDir, 'the spool directory');
  secrets.push(...environmentSecrets(env, options.home ?? homedir()));
  const config = {
    configFile: fileRead,
    bundle: bundle ?? '',
    source: source!,
    publicKeyPath: publicKeyPath ?? '',
    publicKey: publicKey ?? '',
    exporter,
    out: out === '-' ? undefined : out,
    outFromFlag: raw.get('out')?.origin.kind === 'flag',
    elasticsearch,
    s3: { ...(s3Endpoint ? { endpoint: s3Endpoint } : {}), ...(s3Region ? { region: s3Region } : {}) },
    category,
    username: str('username'),
    instanceId: str('instanceId'),
    hostId: str('hostId'),
    // Differential where volume matters (Elasticsearch); NDJSON one-offs (pnpm demo, --out) get every result.
    results: oneOf('results', RESULTS_MODES) ?? (exporter === 'elasticsearch' ? 'differential' : 'snapshot'),
    snapshotIntervalSec: num('snapshotIntervalSec', { min: 60, label: 'a number of seconds >= 60' }) ?? 86_400,
    concurrency: num('concurrency', { integer: true, min: 1, label: 'a positive integer' }),
    timeoutSec: duration('timeoutSec', DURATION_RANGES.checkTimeoutSec),
    nice: num('nice', { integer: true, min: 0, max: 19, label: 'an integer from 0 to 19' }) ?? DEFAULTS.nice,
    ionice: bool('ionice') ?? DEFAULTS.ionice,
    containment: oneOf('containment', CONTAINMENT_MODES) ?? 'auto',
    stateDir,
    spoolDir,
    spoolMaxBytes: num('spoolMaxBytes', { integer: true, min: 1024, label: 'a number of bytes >= 1024' }),
    schedule,
    graceSec: duration('graceSec', DURATION_RANGES.graceSec) ?? DEFAULTS.graceSec,
    lockWaitSec: duration('lockWaitSec', DURATION_RANGES.lockWaitSec) ?? DEFAULTS.lockWaitSec,
    logLevel: oneOf('logLevel', LOG_LEVELS) ?? options.defaultLogLevel ?? 'info',
    checkSettings: loadCheckSettings(fileValues.get('checkSettings'), configFile, env, problems),
    secrets,
  } satisfies AgentConfig;

  if (problems.length > 0) {
    throw new ConfigError(`Invalid configuration (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n${problems.map((p) => `  ${p}`).join('\n')}`, {
      problems,
    });
  }
  return config;
}

const CHECK_SETTING_ENV = 'GATHER_CHECK_';

/**
 * Check settings: the file's `checkSettings` object, then `GATHER_CHECK_<NAME>` variables over it. Values are
 * short single-line strings (numbers are written as they read); checks validate them and fall back to defaults.
 */
function loadCheckSettings(fromFile: unknown, file: string, env: NodeJS.ProcessEnv, problems: string[]): Record<string, string> {
  const settings: Record<string, string> = {};
  const add = (name: string, value: unknown, where: string) => {
    if (!CHECK_SETTING_NAME.test(name)) {
      problems.push(`${where}: setting names are upper case letters, digits and _ (not CATEGORY or CHECK), e.g. CPU_MIN_SEC`);
    } else if ((typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') || /[\0\n\r]/.test(String(value)) || String(value).length > 4096) {
      problems.push(`${where}: must be a single-line string, number or boolean of at most 4096 characters`);
    } else settings[name] = String(value);
  };
  if (fromFile !== undefined && fromFile !== null) {
    if (typeof fromFile !== 'object' || Array.isArray(fromFile)) problems.push(`checkSettings: must be an object such as {"CPU_MIN_SEC": 600} (in ${file})`);
    else for (const [name, value] of Object.entries(fromFile)) add(name, value, `checkSettings.${name} (in ${file})`);
  }
  for (const [name, value] of Object.entries(env)) {
    if (name.startsWith(CHECK_SETTING_ENV) && value !== undefined && value !== '') add(name.slice(CHECK_SETTING_ENV.length), value, `checkSettings (environment variable ${name})`);
  }
  return settings;
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
          },
        }
      : {}),
  };
}
