#!/usr/bin/env -S node --max-semi-space-size=1 --optimize-for-size
// Keeps the agent's RSS low on the user's VM: check output is short-lived garbage, and V8's defaults (up to
// 16 MiB per semi-space, speed-first heap growth) let RSS grow by ~15-20 MB for no gain in an I/O-bound run.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import {
  BundleRefusedError,
  CATEGORIES,
  ConfigError,
  createSequenceStateFile,
  fetchVerifiedBundle,
  isGatherError,
  isHostResourceError,
  redactText,
  usageErrorText,
  UsageError,
  type CheckDoneEvent,
  type VerifiedBundle,
} from '@gather/core';
import { formatTable, tableRow, type TableRow } from './_table.js';
import { bundleSourceKey, createFetcher } from './adapters.js';
import { loadConfig, type AgentConfig, type Flags, type LogLevel } from './config.js';
import { EXIT, exitCodeForError } from './exit-codes.js';
import { acquireLock, logTakeover } from './lock.js';
import { createLogger, type Logger } from './logger.js';
import { runOnce } from './run-once.js';
import { AGENT_VERSION } from './version.js';

const CONFIG_OPTIONS = `Configuration: a JSON file (--config, default /etc/gather/agent.json), then GATHER_* environment
variables, then these flags, each overriding the one before (see the README's configuration table).

  --config <file>          JSON configuration file (default: /etc/gather/agent.json when it exists)
  --bundle <source>        file:/path, a path, or s3://bucket/prefix (follows <prefix>/latest)   [GATHER_BUNDLE]
  --public-key <file>      ed25519 public key (SPKI PEM) the bundle must be signed with   [GATHER_PUBLIC_KEY]
  --exporter <e>           file, stdout or elasticsearch (default: file with --out, else stdout)   [GATHER_EXPORTER]
  --out <file|->           NDJSON destination of the file exporter (- = stdout)   [GATHER_OUT]
  --es-url <url>           Elasticsearch URL   [GATHER_ES_URL]
  --es-api-key-file <f>    file holding the API key   [GATHER_ES_API_KEY_FILE, or GATHER_ES_API_KEY]
  --es-username <u>        with --es-password-file   [GATHER_ES_USERNAME]
  --es-password-file <f>   file holding the password   [GATHER_ES_PASSWORD_FILE, or GATHER_ES_PASSWORD]
  --es-ca-file <f>         CA (PEM) of the cluster's certificate   [GATHER_ES_CA_FILE]
  --s3-endpoint <url>      S3-compatible endpoint (default: AWS)   [GATHER_S3_ENDPOINT]
  --s3-region <r>          S3 region   [GATHER_S3_REGION]; credentials: AWS_* variables, profile or instance role
  --username <u>           Owner of this VM, added to every document   [GATHER_USERNAME]
  --instance-id <id>       Id of this VM, added to every document   [GATHER_INSTANCE_ID]
  --host-id <id>           Stable host identity (default: /etc/machine-id)   [GATHER_HOST_ID]
  --results <mode>         differential (changes only; default with elasticsearch) or snapshot (every result)   [GATHER_RESULTS]
  --snapshot-interval <s>  differential: a full snapshot at least this often (default: 86400)   [GATHER_SNAPSHOT_INTERVAL_SEC]
  --concurrency <n>        Checks run at once (default: number of CPUs)   [GATHER_CONCURRENCY]
  --timeout <seconds>      Per-check timeout; a check may override it (default: 60)   [GATHER_TIMEOUT]
  --nice <0-19>            Niceness of the checks (default: 10)   [GATHER_NICE]
  --ionice / --no-ionice   Checks in the idle I/O class where ionice exists (default: on)   [GATHER_IONICE]
  --containment <how>      auto, cgroup or pgroup: what kills what a check leaves (default: auto)   [GATHER_CONTAINMENT]
  --state-dir <dir>        Locks and bundle cache (default: /var/lib/gather as root)   [GATHER_STATE_DIR]
  --spool-dir <dir>        Elasticsearch spool (default: /var/spool/gather as root)   [GATHER_SPOOL_DIR]
  --lock-wait <seconds>    How long to wait for another run to finish (default: 60)   [GATHER_LOCK_WAIT_SEC]
  --log-level <level>      trace, debug, info, warn, error, fatal or silent   [GATHER_LOG_LEVEL]
  -h, --help               Show this help
`;

const USAGE: Record<string, string> = {
  main: `Usage: gather-agent <command> [options]

Commands:
  run      Fetch, verify and run the checks of a bundle once; export the results
  daemon   Run the abuse checks every 15 minutes and the analytics checks daily, until stopped
  verify   Verify a bundle's signature and contents without running anything
  version  Print the agent version

Run "gather-agent <command> --help" for the options of a command.
Exit codes: 0 ok (every document reached its index), 1 internal error, 2 usage or configuration error,
3 bundle refused, 4 fetch failed, 5 some checks failed, 6 export failed or documents refused, dropped or
unreadable in the spool, 7 results spooled, 8 locked by another run, 130 interrupted.
`,
  run: `Usage: gather-agent run [--bundle <source> --public-key <file>] [options]

Fetches, verifies and runs the checks once, exports results, error records and a run summary.
SIGINT, SIGTERM or SIGHUP at any moment: running checks are killed, what was collected is exported (or
spooled when Elasticsearch does not answer within 5 s), temp dir and locks are removed; exit 130.

  --category <c>           abuse, analytics or all (default: all)   [GATHER_CATEGORY]
  --dry-run                Fetch and verify the bundle and list the checks that would run; run and export nothing
  --table / --no-table     Print a human table on stderr (default: when stderr is a terminal)
${CONFIG_OPTIONS}`,
  daemon: `Usage: gather-agent daemon [--config <file>] [options]

Runs the abuse checks every 15 minutes and the analytics checks every 24 hours (each with a random splay of
10 % of the interval), one run at a time. SIGTERM/SIGINT: stop scheduling, let the current run finish for
--grace seconds, then kill its checks, export what was collected and exit 0. SIGHUP: reload the configuration.
Logs are JSON lines on stderr.

  --abuse-every <seconds>      Interval of the abuse checks (default: 900)   [GATHER_ABUSE_EVERY_SEC]
  --analytics-every <seconds>  Interval of the analytics checks (default: 86400)   [GATHER_ANALYTICS_EVERY_SEC]
  --grace <seconds>            How long a running run may go on after SIGTERM (default: 30)   [GATHER_GRACE_SEC]
${CONFIG_OPTIONS}`,
  verify: `Usage: gather-agent verify [--bundle <source> --public-key <file>] [options]

Fetches the bundle and checks its signature, manifest and member hashes, and that it is not older than a
bundle this host already accepted nor expired; runs nothing. Prints the bundle version, sha256, sequence
and check ids. Exit 0 when valid, 3 when refused.

  --config <file>          JSON configuration file (default: /etc/gather/agent.json when it exists)
  --bundle <source>        file:/path, a path, or s3://bucket/prefix   [GATHER_BUNDLE]
  --public-key <file>      ed25519 public key (SPKI PEM)   [GATHER_PUBLIC_KEY]
  --s3-endpoint <url>      S3-compatible endpoint   [GATHER_S3_ENDPOINT]
  --s3-region <r>          S3 region   [GATHER_S3_REGION]
  --state-dir <dir>        Where the highest accepted bundle sequence is kept (read only here)   [GATHER_STATE_DIR]
  -h, --help               Show this help
`,
  version: `Usage: gather-agent version\n\nPrints the agent version.\n`,
};

const STOP_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

const PROGRAM = 'gather-agent';

/** A configuration that could not be loaded: its problems, then a pointer to the command's --help (like a usage error). */
class CommandConfigError extends Error {
  constructor(
    readonly error: ConfigError,
    readonly command: string,
  ) {
    super(error.message);
  }
}

type Options = NonNullable<ParseArgsConfig['options']>;

const s = { type: 'string' } as const;
const b = { type: 'boolean' } as const;
const CONFIG_FLAGS: Options = {
  config: s,
  bundle: s,
  'public-key': s,
  exporter: s,
  out: s,
  'es-url': s,
  'es-api-key-file': s,
  'es-username': s,
  'es-password-file': s,
  'es-ca-file': s,
  's3-endpoint': s,
  's3-region': s,
  username: s,
  'instance-id': s,
  'host-id': s,
  results: s,
  'snapshot-interval': s,
  concurrency: s,
  timeout: s,
  nice: s,
  ionice: b,
  containment: s,
  'state-dir': s,
  'spool-dir': s,
  'lock-wait': s,
  'log-level': s,
};

function parse(command: string, args: string[], options: Options): Flags {
  try {
    const parsed = parseArgs({ args, options: { ...options, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: false, allowNegative: true });
    return parsed.values as Flags;
  } catch (error) {
    throw new UsageError((error as Error).message, { command });
  }
}

/**
 * Node's process warnings (e.g. a dependency's deprecation notice) go to the log as JSON lines instead of
 * plain text on stderr, so the log stays one JSON object per line.
 */
function logProcessWarnings(logger: Logger): void {
  process.removeAllListeners('warning');
  process.on('warning', (warning) => logger.warn(warning.message, { warning: warning.name, ...('code' in warning ? { code: warning.code } : {}) }));
}

function load(command: string, flags: Flags, defaultLogLevel: LogLevel, bundleOnly = false): AgentConfig {
  try {
    return loadConfig({
      ...(typeof flags.config === 'string' ? { configFile: flags.config } : {}),
      flags,
      defaultLogLevel,
      bundleOnly,
    });
  } catch (error) {
    if (ConfigError.isInstance(error)) throw new CommandConfigError(error, command);
    throw error;
  }
}

async function commandRun(args: string[]): Promise<number> {
  const flags = parse('run', args, { ...CONFIG_FLAGS, category: s, table: b, 'dry-run': b });
  if (flags.help) return help('run');
  const config = load('run', flags, 'warn');
  const logger = createLogger({ level: config.logLevel, secrets: config.secrets });
  logProcessWarnings(logger);
  if (flags['dry-run']) return dryRun(config, logger);

  // SIGINT, SIGTERM and SIGHUP all stop a one-off run the same way (SIGHUP means reload only to the daemon):
  // checks killed, what was collected exported or spooled, temp dir and locks removed, exit 130.
  const stop = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (!stop.signal.aborted) logger.warn(`${signal} received: stopping the run`, { signal });
    stop.abort();
  };
  for (const signal of STOP_SIGNALS) process.on(signal, onSignal);
  try {
    let lock;
    try {
      lock = await acquireLock(join(config.stateDir, 'agent.lock'), {
        purpose: `run ${config.category}`,
        waitMs: config.lockWaitSec * 1000,
        signal: stop.signal,
        onWait: (owner) =>
          logger.warn(`another gather-agent run is in progress; waiting up to ${config.lockWaitSec} s`, { holder: owner }),
        onTakeover: logTakeover(logger),
      });
    } catch (error) {
      if (!stop.signal.aborted) throw error;
      process.stderr.write('[gather] [agent] Interrupted while waiting for another run to finish; nothing was run.\n');
      return EXIT.INTERRUPTED;
    }
    const showTable = (flags.table as boolean | undefined) ?? Boolean(process.stderr.isTTY);
    const rows: TableRow[] = [];
    try {
      const result = await runOnce({
        config,
        category: config.category,
        logger,
        trigger: 'once',
        signal: stop.signal,
        handleProcessSignals: false,
        // A one-off --out is rewritten; the configured destination (shared with the daemon) is appended to.
        append: !config.outFromFlag,
        ...(showTable ? { onCheckDone: (event: CheckDoneEvent) => void rows.push(tableRow(event)) } : {}),
      });
      if (result.error === undefined && showTable) process.stderr.write(formatTable(rows, result.summary));
      if (result.exportError) process.stderr.write(`${redactText(result.exportError, config.secrets)}\n`);
      if (result.error !== undefined) report(result.error, config.secrets);
      return result.exitCode;
    } finally {
      await lock.release();
    }
  } finally {
    for (const signal of STOP_SIGNALS) process.off(signal, onSignal);
  }
}

interface Inspected {
  source: string;
  verified: VerifiedBundle;
}

/** core's fetch-and-verify step, into a private temp dir (no cache, no lock); the sequence state is only read. */
async function inspectBundle(config: AgentConfig, logger: Logger): Promise<Inspected> {
  const fetcher = await createFetcher(config, { logger, cache: false });
  const dir = await mkdtemp(join(tmpdir(), 'gather-verify-'));
  try {
    const { fetched, verified } = await fetchVerifiedBundle({
      fetcher,
      dir,
      publicKey: config.publicKey,
      sequenceState: createSequenceStateFile(config.stateDir, bundleSourceKey(config)),
    });
    return { source: fetched.source, verified };
  } finally {
    await rm(dir, { recursive: true, force: true });
    await fetcher.close?.().catch(() => undefined);
  }
}

function describeBundle({ verified }: Inspected, categories: readonly string[]): string {
  const { manifest } = verified;
  return (
    `ok: bundle ${manifest.version} (sha256 ${verified.sha256}, created ${manifest.created}, sequence ${manifest.sequence}` +
    `${manifest.expires_at ? `, expires ${manifest.expires_at}` : ''})\n` +
    CATEGORIES.filter((c) => categories.includes(c))
      .map((c) => `${c}: ${manifest.checks[c].join(' ') || '(none)'}`)
      .join('\n') +
    '\n'
  );
}

async function dryRun(config: AgentConfig, logger: Logger): Promise<number> {
  const inspected = await inspectBundle(config, logger);
  const categories = config.category === 'all' ? CATEGORIES : [config.category];
  const count = categories.reduce((n, c) => n + inspected.verified.manifest.checks[c].length, 0);
  process.stdout.write(
    describeBundle(inspected, categories) +
      `dry run: would run ${count} checks from ${inspected.source} with the ${config.exporter} exporter; nothing was run or exported.\n`,
  );
  return EXIT.OK;
}

async function commandVerify(args: string[]): Promise<number> {
  const flags = parse('verify', args, {
    config: s,
    bundle: s,
    'public-key': s,
    's3-endpoint': s,
    's3-region': s,
    'state-dir': s,
    'log-level': s,
  });
  if (flags.help) return help('verify');
  const config = load('verify', flags, 'warn', true);
  const logger = createLogger({ level: config.logLevel, secrets: config.secrets });
  logProcessWarnings(logger);
  process.stdout.write(describeBundle(await inspectBundle(config, logger), CATEGORIES));
  return EXIT.OK;
}

async function commandDaemon(args: string[]): Promise<number> {
  const flags = parse('daemon', args, { ...CONFIG_FLAGS, grace: s, 'abuse-every': s, 'analytics-every': s });
  if (flags.help) return help('daemon');
  const loader = () => load('daemon', flags, 'info');
  const config = loader();
  const logger = createLogger({ level: config.logLevel, secrets: config.secrets });
  logProcessWarnings(logger);
  // Loaded only here: a one-off run does not pay for the daemon's code.
  const { Daemon } = await import('./daemon.js');
  let first = true;
  const daemon = new Daemon({
    // The first load is the one above; later ones (SIGHUP) read the file and the environment again.
    load: () => (first ? ((first = false), config) : loadConfig({ ...(typeof flags.config === 'string' ? { configFile: flags.config } : {}), flags, defaultLogLevel: 'info' })),
    logger,
  });
  const onStop = (signal: NodeJS.Signals) => void daemon.stop(signal);
  const onReload = () => daemon.reload();
  process.on('SIGTERM', onStop);
  process.on('SIGINT', onStop);
  process.on('SIGHUP', onReload);
  // Keeps the process alive even when every category is disabled.
  const keepAlive = setInterval(() => undefined, 1 << 30);
  try {
    await daemon.start();
    await daemon.finished;
  } finally {
    clearInterval(keepAlive);
    process.off('SIGTERM', onStop);
    process.off('SIGINT', onStop);
    process.off('SIGHUP', onReload);
  }
  return EXIT.OK;
}

function help(command: string): number {
  process.stdout.write(USAGE[command] ?? USAGE.main!);
  return EXIT.OK;
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'run':
        return await commandRun(rest);
      case 'daemon':
        return await commandDaemon(rest);
      case 'verify':
        return await commandVerify(rest);
      case 'version':
      case '--version':
        if (rest.includes('--help') || rest.includes('-h')) return help('version');
        process.stdout.write(`${AGENT_VERSION}\n`);
        return EXIT.OK;
      case undefined:
        // Like gather-bundle: no command is a usage error (exit 2), with the commands on stderr.
        process.stderr.write(USAGE.main!);
        return EXIT.USAGE;
      case 'help':
      case '--help':
      case '-h':
        return help('main');
      default:
        throw new UsageError(`Unknown command "${command}".`);
    }
  } catch (error) {
    return report(error);
  }
}

/** Prints why a command failed (secrets redacted); the exit code comes from the one mapping, exit-codes.ts. */
function report(error: unknown, secrets: readonly string[] = []): number {
  const print = (text: string) => process.stderr.write(`${redactText(text, secrets)}\n`);
  if (UsageError.isInstance(error) || error instanceof CommandConfigError) print(usageErrorText(PROGRAM, error));
  else if (BundleRefusedError.isInstance(error)) print(`${error.message}\nNo check was run.`);
  else if (isGatherError(error)) print(error.message);
  else if (isHostResourceError(error)) print(`[gather] [agent] The run failed because this host did: ${error.message}. Fix it (e.g. free disk space) and run again.`);
  else print(`[gather] [agent] Unexpected error (please report it): ${(error as Error)?.stack ?? String(error)}`);
  return exitCodeForError(error instanceof CommandConfigError ? error.error : error);
}

const code = await main(process.argv.slice(2));
// An interrupted run ends now: a socket a hung server never closes must not keep the process alive.
if (code === EXIT.INTERRUPTED) process.exit(code);
process.exitCode = code;
