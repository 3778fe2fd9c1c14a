/**
 * Every setting of the agent, said once: its file key, environment variable, flag, default, allowed values
 * and help. The configuration parser (config-sources.ts), the settings part of `--help` and the README's
 * configuration table (settings-docs.ts) are derived from this list; a test fails when the README is stale.
 */
import { CATEGORIES, CONTAINMENT_MODES, DURATION_RANGES, type Category, type DurationRange } from '@gather/core';

export type ExporterKind = 'file' | 'stdout' | 'elasticsearch';
export const EXPORTERS: readonly ExporterKind[] = ['file', 'stdout', 'elasticsearch'];
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';
export const LOG_LEVELS: readonly LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];
/** `differential`: only added/changed/removed results between full snapshots; `snapshot`: every result, every run. */
export type ResultsMode = 'differential' | 'snapshot';
export const RESULTS_MODES: readonly ResultsMode[] = ['differential', 'snapshot'];

export const DEFAULT_CONFIG_FILE = '/etc/gather/agent.json';

/** The commands whose flags include a setting. */
export type Command = 'run' | 'daemon' | 'verify';

/** What a value must be: checked while loading (every problem named with its origin), shown in the README. */
export type Rule =
  | { kind: 'text' }
  | { kind: 'oneOf'; values: readonly string[] }
  | { kind: 'number'; integer?: boolean; min: number; max?: number; label: string }
  | { kind: 'duration'; range: DurationRange }
  | { kind: 'boolean' }
  /** An Elasticsearch index name, by core's rule (the exporter's own). */
  | { kind: 'indexName' };

export interface Setting {
  /** Path in the JSON file, e.g. `elasticsearch.url`. */
  key: string;
  env?: string;
  /** Secrets have no flag: argv is visible in `ps`. */
  flag?: string;
  /** The flag's value in `--help`, e.g. `<url>`. */
  arg?: string;
  rule: Rule;
  /** Commands that take the flag (default: run and daemon). */
  commands?: readonly Command[];
  /** The value when none is configured, when it depends on nothing else. */
  default?: string | number | boolean;
  /** The default as documented when it is decided while loading (markdown). */
  defaultDoc?: string;
  /** One line, for `--help` and the README (markdown: backticks are dropped in `--help`). */
  help: string;
  /** More, for the README only. */
  more?: string;
}

const RUN_AND_DAEMON: readonly Command[] = ['run', 'daemon'];
const EVERY_COMMAND: readonly Command[] = ['run', 'daemon', 'verify'];
const text = { kind: 'text' } as const;
const boolean = { kind: 'boolean' } as const;
const indexName = { kind: 'indexName' } as const;
const duration = (range: DurationRange): Rule => ({ kind: 'duration', range });

export const SCHEDULE_DEFAULTS: Record<Category, { enabled: boolean; everySec: number; splayPct: number; firstDelaySec: number }> = {
  abuse: { enabled: true, everySec: 15 * 60, splayPct: 10, firstDelaySec: 30 },
  analytics: { enabled: true, everySec: 24 * 60 * 60, splayPct: 10, firstDelaySec: 180 },
};

/**
 * The settings of each category, `<c>` standing for the category (`<C>` in upper case): expanded into
 * SETTINGS for the parser, one README row each.
 */
export const CATEGORY_SETTINGS: readonly Setting[] = [
  {
    key: 'schedule.<c>.everySec',
    env: 'GATHER_<C>_EVERY_SEC',
    flag: '<c>-every',
    arg: '<seconds>',
    rule: duration(DURATION_RANGES.everySec),
    commands: ['daemon'],
    help: 'daemon: interval of the <c> checks',
  },
  {
    key: 'schedule.<c>.splayPct',
    env: 'GATHER_<C>_SPLAY_PCT',
    rule: duration(DURATION_RANGES.splayPct),
    help: 'daemon: each run starts up to this % of the interval late (random), so a fleet spreads out',
  },
  {
    key: 'schedule.<c>.firstDelaySec',
    env: 'GATHER_<C>_FIRST_DELAY_SEC',
    rule: duration(DURATION_RANGES.firstDelaySec),
    help: 'daemon: the first run comes this long after start, plus a jitter of up to min(splay, this)',
  },
  { key: 'schedule.<c>.enabled', rule: boolean, help: 'daemon: schedule this category at all' },
];

const SCHEDULE_FIELD = (key: string) => key.slice(key.lastIndexOf('.') + 1) as keyof (typeof SCHEDULE_DEFAULTS)[Category];

/** A category setting for one category. */
export function forCategory(setting: Setting, c: Category): Setting {
  const fill = (s: string) => s.replaceAll('<c>', c).replaceAll('<C>', c.toUpperCase());
  return {
    ...setting,
    key: fill(setting.key),
    ...(setting.env ? { env: fill(setting.env) } : {}),
    ...(setting.flag ? { flag: fill(setting.flag) } : {}),
    help: fill(setting.help),
    default: SCHEDULE_DEFAULTS[c][SCHEDULE_FIELD(setting.key)],
  };
}

/** Every setting the parser reads, in the order of the README table and `--help`. */
export const SETTINGS: readonly Setting[] = [
  {
    key: 'bundle',
    env: 'GATHER_BUNDLE',
    flag: 'bundle',
    arg: '<source>',
    rule: text,
    commands: EVERY_COMMAND,
    defaultDoc: 'required',
    help: '`file:/path`, a path, or `s3://bucket/prefix` (follows `<prefix>/latest`)',
    more: '; a key ending in `.tar` names one object',
  },
  {
    key: 'publicKey',
    env: 'GATHER_PUBLIC_KEY',
    flag: 'public-key',
    arg: '<file>',
    rule: text,
    commands: EVERY_COMMAND,
    defaultDoc: 'required',
    help: 'ed25519 public key (SPKI PEM) every bundle must be signed with',
    more: '; there is no unsigned mode. A private key here is refused (exit 2): ship only the public half',
  },
  {
    key: 'exporter',
    env: 'GATHER_EXPORTER',
    flag: 'exporter',
    arg: '<e>',
    rule: { kind: 'oneOf', values: EXPORTERS },
    defaultDoc: '`file` with `out`, else `stdout`',
    help: 'where results go',
  },
  {
    key: 'out',
    env: 'GATHER_OUT',
    flag: 'out',
    arg: '<file|->',
    rule: text,
    help: 'NDJSON destination of the file exporter (`-` = stdout)',
    more: '; `--out` rewrites it, a configured `out` is appended to',
  },
  {
    key: 'elasticsearch.url',
    env: 'GATHER_ES_URL',
    flag: 'es-url',
    arg: '<url>',
    rule: text,
    help: 'Elasticsearch URL',
    more: ' (required by the `elasticsearch` exporter)',
  },
  {
    key: 'elasticsearch.apiKeyFile',
    env: 'GATHER_ES_API_KEY_FILE',
    flag: 'es-api-key-file',
    arg: '<f>',
    rule: text,
    defaultDoc: '`$CREDENTIALS_DIRECTORY/es-api-key`',
    help: 'file holding the API key (mode 0600) or a systemd credential',
  },
  {
    key: 'elasticsearch.apiKey',
    env: 'GATHER_ES_API_KEY',
    rule: text,
    help: 'the API key itself',
    more: '; prefer the file: the environment is easier to leak',
  },
  {
    key: 'elasticsearch.username',
    env: 'GATHER_ES_USERNAME',
    flag: 'es-username',
    arg: '<u>',
    rule: text,
    help: 'basic auth user, with the password',
  },
  {
    key: 'elasticsearch.passwordFile',
    env: 'GATHER_ES_PASSWORD_FILE',
    flag: 'es-password-file',
    arg: '<f>',
    rule: text,
    defaultDoc: '`$CREDENTIALS_DIRECTORY/es-password`',
    help: 'file holding the basic auth password, or a systemd credential',
  },
  { key: 'elasticsearch.password', env: 'GATHER_ES_PASSWORD', rule: text, help: 'the password itself', more: '; prefer the file' },
  {
    key: 'elasticsearch.caFile',
    env: 'GATHER_ES_CA_FILE',
    flag: 'es-ca-file',
    arg: '<f>',
    rule: text,
    defaultDoc: 'system CAs',
    help: "CA (PEM) of the cluster's certificate",
  },
  {
    key: 'elasticsearch.resultsIndex',
    env: 'GATHER_ES_RESULTS_INDEX',
    rule: indexName,
    default: 'gather-results',
    help: 'base name of the daily results indices',
    more: ' (`<name>-YYYY.MM.DD`, see [Data model](#data-model-and-retention))',
  },
  {
    key: 'elasticsearch.errorsIndex',
    env: 'GATHER_ES_ERRORS_INDEX',
    rule: indexName,
    default: 'gather-errors',
    help: 'base name of the daily error-record indices',
  },
  {
    key: 'elasticsearch.runsIndex',
    env: 'GATHER_ES_RUNS_INDEX',
    rule: indexName,
    default: 'gather-runs',
    help: 'base name of the daily run-summary indices',
  },
  {
    key: 'elasticsearch.latestIndex',
    env: 'GATHER_ES_LATEST_INDEX',
    rule: indexName,
    default: 'gather-latest',
    help: 'current state: one document per host × result',
  },
  {
    key: 'elasticsearch.hostsIndex',
    env: 'GATHER_ES_HOSTS_INDEX',
    rule: indexName,
    default: 'gather-hosts',
    help: 'current state: one document per host',
  },
  // 1024 is Elasticsearch's own limit of primary shards per index.
  {
    key: 'elasticsearch.shards',
    env: 'GATHER_ES_SHARDS',
    rule: { kind: 'number', integer: true, min: 1, max: 1024, label: 'an integer from 1 to 1024' },
    defaultDoc: '`1`',
    help: "primary shards of each index gather's templates create",
    more: ' (`index.number_of_shards`; from the next daily index on)',
  },
  // More copies than nodes leaves every index yellow; 32 is far beyond any cluster a fleet of VMs needs.
  {
    key: 'elasticsearch.replicas',
    env: 'GATHER_ES_REPLICAS',
    rule: { kind: 'number', integer: true, min: 0, max: 32, label: 'an integer from 0 to 32' },
    defaultDoc: '`0` on one node, else `1`',
    help: "replicas of each index gather's templates create",
    more: ' (`index.number_of_replicas`, replacing the default `index.auto_expand_replicas: "0-1"`)',
  },
  {
    key: 'results',
    env: 'GATHER_RESULTS',
    flag: 'results',
    arg: '<mode>',
    rule: { kind: 'oneOf', values: RESULTS_MODES },
    defaultDoc: '`differential` with `elasticsearch`, else `snapshot`',
    help: '`differential`: only added, changed and removed results between full snapshots; `snapshot`: every result every run',
  },
  {
    key: 'snapshotIntervalSec',
    env: 'GATHER_SNAPSHOT_INTERVAL_SEC',
    flag: 'snapshot-interval',
    arg: '<s>',
    rule: { kind: 'number', min: 60, label: 'a number of seconds >= 60' },
    default: 86_400,
    help: 'differential: a full snapshot at least this often',
  },
  {
    key: 'hostId',
    env: 'GATHER_HOST_ID',
    flag: 'host-id',
    arg: '<id>',
    rule: text,
    defaultDoc: '`/etc/machine-id`',
    help: '`host.id` of every document: the stable identity of the VM',
    more: ' (set it on clones sharing a machine id)',
  },
  {
    key: 's3.endpoint',
    env: 'GATHER_S3_ENDPOINT',
    flag: 's3-endpoint',
    arg: '<url>',
    rule: text,
    commands: EVERY_COMMAND,
    defaultDoc: 'AWS',
    help: 'S3-compatible endpoint',
    more: '; credentials come from `GATHER_S3_ACCESS_KEY_ID` + `GATHER_S3_SECRET_ACCESS_KEY` when both are set, else the AWS SDK chain (`AWS_*` variables, profile, instance role)',
  },
  {
    key: 's3.region',
    env: 'GATHER_S3_REGION',
    flag: 's3-region',
    arg: '<r>',
    rule: text,
    commands: EVERY_COMMAND,
    defaultDoc: 'AWS',
    help: 'S3 region',
  },
  {
    key: 'category',
    env: 'GATHER_CATEGORY',
    flag: 'category',
    arg: '<c>',
    rule: { kind: 'oneOf', values: [...CATEGORIES, 'all'] },
    commands: ['run'],
    default: 'all',
    help: '`run`: the checks to run',
  },
  {
    key: 'username',
    env: 'GATHER_USERNAME',
    flag: 'username',
    arg: '<u>',
    rule: text,
    help: 'owner of this VM, added to every document as `user.name`',
  },
  {
    key: 'instanceId',
    env: 'GATHER_INSTANCE_ID',
    flag: 'instance-id',
    arg: '<id>',
    rule: text,
    help: 'id of this VM, added to every document as `cloud.instance.id`',
  },
  {
    key: 'concurrency',
    env: 'GATHER_CONCURRENCY',
    flag: 'concurrency',
    arg: '<n>',
    rule: { kind: 'number', integer: true, min: 1, label: 'a positive integer' },
    defaultDoc: 'CPUs',
    help: 'checks run at once',
  },
  {
    key: 'timeoutSec',
    env: 'GATHER_TIMEOUT',
    flag: 'timeout',
    arg: '<seconds>',
    rule: duration(DURATION_RANGES.checkTimeoutSec),
    defaultDoc: '`60`',
    help: 'per-check timeout; a check may set its own with `# gather: timeout=N`, same range',
  },
  {
    key: 'nice',
    env: 'GATHER_NICE',
    flag: 'nice',
    arg: '<0-19>',
    rule: { kind: 'number', integer: true, min: 0, max: 19, label: 'an integer from 0 to 19' },
    default: 10,
    help: 'niceness of the checks, set on each check with setpriority()',
  },
  {
    key: 'ionice',
    env: 'GATHER_IONICE',
    flag: 'ionice',
    rule: boolean,
    default: true,
    help: 'checks in the idle I/O class',
    more: ': the agent puts itself there once (the ioprio_set() system call on Node 26, else `ionice -c3 -p <pid>` where `ionice` exists) and its checks inherit it',
  },
  {
    key: 'containment',
    env: 'GATHER_CONTAINMENT',
    flag: 'containment',
    arg: '<how>',
    rule: { kind: 'oneOf', values: CONTAINMENT_MODES },
    default: 'auto',
    help: 'what kills the processes a check leaves; `auto`: a cgroup where possible',
    more: '; see [Security](#security)',
  },
  {
    key: 'stateDir',
    env: 'GATHER_STATE_DIR',
    flag: 'state-dir',
    arg: '<dir>',
    rule: text,
    commands: EVERY_COMMAND,
    defaultDoc: '`/var/lib/gather` (root)',
    help: 'locks, the bundle cache, the differential state and the highest bundle sequence accepted per source',
    more: " (`bundle-sequence/`); as root: root's alone, see [Security](#security)",
  },
  {
    key: 'spoolDir',
    env: 'GATHER_SPOOL_DIR',
    flag: 'spool-dir',
    arg: '<dir>',
    rule: text,
    defaultDoc: '`/var/spool/gather` (root)',
    help: 'documents kept while Elasticsearch is unreachable',
  },
  {
    key: 'spoolMaxBytes',
    env: 'GATHER_SPOOL_MAX_BYTES',
    rule: { kind: 'number', integer: true, min: 1024, label: 'a number of bytes >= 1024' },
    defaultDoc: '256 MiB',
    help: 'bound of the spool on disk',
    more: '; when full, its oldest segment is dropped (counted, reported, exit 6)',
  },
  {
    key: 'lockWaitSec',
    env: 'GATHER_LOCK_WAIT_SEC',
    flag: 'lock-wait',
    arg: '<seconds>',
    rule: duration(DURATION_RANGES.lockWaitSec),
    default: 60,
    help: 'how long a run waits for another run to finish (then exit 8)',
  },
  {
    key: 'logLevel',
    env: 'GATHER_LOG_LEVEL',
    flag: 'log-level',
    arg: '<level>',
    rule: { kind: 'oneOf', values: LOG_LEVELS },
    commands: EVERY_COMMAND,
    defaultDoc: '`info` (daemon), `warn` (run)',
    help: 'how much is logged (JSON lines on stderr)',
  },
  {
    key: 'graceSec',
    env: 'GATHER_GRACE_SEC',
    flag: 'grace',
    arg: '<seconds>',
    rule: duration(DURATION_RANGES.graceSec),
    commands: ['daemon'],
    default: 30,
    help: 'daemon: how long the current run may go on after SIGTERM before its checks are killed',
  },
  ...CATEGORY_SETTINGS.flatMap((setting) => CATEGORIES.map((c) => forCategory(setting, c))),
];

/** Read by others than the parser (fetcher-s3, the checks): listed for the README table only. */
export const OTHER_SETTINGS: readonly Setting[] = [
  {
    key: 'checkSettings.<NAME>',
    env: 'GATHER_CHECK_<NAME>',
    rule: text,
    help: 'tuning of the checks (thresholds, search bounds, e.g. `CPU_MIN_SEC`, `HOMES`), passed to each check as `GATHER_<NAME>`',
    more: '; the settings are listed in [checks/README.md](checks/README.md#tuning-check-settings)',
  },
];

export const SETTING_BY_KEY: ReadonlyMap<string, Setting> = new Map(SETTINGS.map((s) => [s.key, s]));

/** The type of a setting's value. */
export function valueType(setting: Setting): 'string' | 'number' | 'boolean' {
  const kind = setting.rule.kind;
  return kind === 'boolean' ? 'boolean' : kind === 'number' || kind === 'duration' ? 'number' : 'string';
}
