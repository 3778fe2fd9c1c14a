#!/usr/bin/env -S node --min-semi-space-size=2 --max-semi-space-size=2
// The V8 flags of the package's bin (bin/gather-agent.js says why), for running dist/cli.js directly.
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
import { exitProcess } from './fast-exit.js';
import { acquireLock, logTakeover } from './lock.js';
import { createLogger, type Logger } from './logger.js';
import { runOnce } from './run-once.js';
import { settingFlags, settingsHelp } from './settings-help.js';
import { AGENT_VERSION } from './version.js';

// Functions: the settings' help is put together only when it is printed, not on every run.
const USAGE: Record<string, () => string> = {
  main: () => `Usage: gather-agent <command> [options]

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
  run: () => `Usage: gather-agent run [--bundle <source> --public-key <file>] [options]

Fetches, verifies and runs the checks once, exports results, error records and a run summary.
SIGINT, SIGTERM or SIGHUP at any moment: running checks are killed, what was collected is exported (or
spooled when Elasticsearch does not answer within 5 s), temp dir and locks are removed; exit 130.

  --dry-run                    Fetch and verify the bundle and list the checks that would run; run and export nothing
  --table / --no-table         Print a human table on stderr (default: when stderr is a terminal)

${settingsHelp('run')}`,
  daemon: () => `Usage: gather-agent daemon [--config <file>] [options]

Runs the abuse checks every 15 minutes and the analytics checks every 24 hours (each with a random splay of
10 % of the interval), one run at a time. SIGTERM/SIGINT: stop scheduling, let the current run finish for
--grace seconds, then kill its checks, export what was collected and exit 0. SIGHUP: reload the configuration.
Logs are JSON lines on stderr.

${settingsHelp('daemon')}`,
  verify: () => `Usage: gather-agent verify [--bundle <source> --public-key <file>] [options]

Fetches the bundle and checks its signature, manifest and member hashes, and that it is not older than a
bundle this host already accepted nor expired; runs nothing. Prints the bundle version, sha256, sequence
and check ids. Exit 0 when valid, 3 when refused.

${settingsHelp('verify')}`,
  version: () => `Usage: gather-agent version\n\nPrints the agent version.\n`,
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

const b = { type: 'boolean' } as const;

function parse(command: string, args: string[], options: Options): Flags {
  try {
    const parsed = parseArgs({
      args,
      options: { ...options, help: { type: 'boolean', short: 'h' } },
      strict: true,
      allowPositionals: false,
      allowNegative: true,
    });
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
  process.on('warning', (warning) =>
    logger.warn(warning.message, { warning: warning.name, ...('code' in warning ? { code: warning.code } : {}) }),
  );
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
  const flags = parse('run', args, { ...settingFlags('run'), table: b, 'dry-run': b });
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
        onWait: (owner) => logger.warn(`another gather-agent run is in progress; waiting up to ${config.lockWaitSec} s`, { holder: owner }),
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
  const flags = parse('verify', args, settingFlags('verify'));
  if (flags.help) return help('verify');
  const config = load('verify', flags, 'warn', true);
  const logger = createLogger({ level: config.logLevel, secrets: config.secrets });
  logProcessWarnings(logger);
  process.stdout.write(describeBundle(await inspectBundle(config, logger), CATEGORIES));
  return EXIT.OK;
}

async function commandDaemon(args: string[]): Promise<number> {
  const flags = parse('daemon', args, settingFlags('daemon'));
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
    load: () =>
      first
        ? ((first = false), config)
        : loadConfig({ ...(typeof flags.config === 'string' ? { configFile: flags.config } : {}), flags, defaultLogLevel: 'info' }),
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
  process.stdout.write((USAGE[command] ?? USAGE.main!)());
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
        process.stderr.write(USAGE.main!());
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
  else if (isHostResourceError(error))
    print(`[gather] [agent] The run failed because this host did: ${error.message}. Fix it (e.g. free disk space) and run again.`);
  else print(`[gather] [agent] Unexpected error (please report it): ${(error as Error)?.stack ?? String(error)}`);
  return exitCodeForError(error instanceof CommandConfigError ? error.error : error);
}

/** Resolves once what was written to `stream` before has been handed to the system (pipes take it later). */
function flushed(stream: NodeJS.WriteStream): Promise<void> {
  return new Promise((resolve) => stream.write('', () => resolve()));
}

const code = await main(process.argv.slice(2));
// Every command has awaited its own work (exports closed, state saved, locks released): the process ends
// once stdout and stderr have taken their last lines. Exiting is faster than letting Node tear its heap down
// (~6 ms of a 1-check run, tools/bench/startup; src/fast-exit.ts skips the rest of the teardown), and an
// interrupted run must end even while a socket that a hung server never closes is still open.
await Promise.all([flushed(process.stdout), flushed(process.stderr)]);
exitProcess(code);
