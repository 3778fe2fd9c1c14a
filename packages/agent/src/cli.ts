#!/usr/bin/env -S node --max-semi-space-size=1
// A 1 MiB young generation keeps the agent's RSS low on the user's VM: check output is short-lived garbage,
// and V8's default (up to 16 MiB per semi-space) let RSS grow by ~20 MB for no gain.
import { readFile } from 'node:fs/promises';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import {
  AbortedError,
  BundleRefusedError,
  CATEGORIES,
  ConfigError,
  FetchError,
  createFileExporter,
  createFileFetcher,
  createStdoutExporter,
  isGatherError,
  parsePublicKey,
  redactText,
  run,
  verifyBundle,
  type Category,
  type CheckDoneEvent,
  type Exporter,
  type RunSummary,
} from '@gather/core';
import { formatTable, tableRow, type TableRow } from './_table.js';
import { EXIT } from './exit-codes.js';
import { AGENT_VERSION } from './version.js';

const USAGE: Record<string, string> = {
  main: `Usage: gather-agent <command> [options]

Commands:
  run      Fetch, verify and run the checks of a bundle; write results as NDJSON
  verify   Verify a bundle's signature and contents without running anything
  version  Print the agent version

Run "gather-agent <command> --help" for the options of a command.
Exit codes: 0 ok, 1 internal error, 2 usage or configuration error, 3 bundle refused,
4 fetch failed, 5 some checks failed, 6 export failed, 7 results spooled, 130 interrupted.
`,
  run: `Usage: gather-agent run --bundle <path> --public-key <file> [options]

Options:
  --bundle <path>          Bundle file built by "gather-bundle build"
  --public-key <file>      ed25519 public key (SPKI PEM) the bundle must be signed with
  --category <c>           abuse, analytics or all (default: all)
  --out <file|->           Where NDJSON results and error records go (default: - = stdout)
  --username <u>           Owner of this VM, added to every document
  --instance-id <id>       Id of this VM, added to every document
  --concurrency <n>        Checks run at once (default: number of CPUs)
  --timeout <seconds>      Per-check timeout; a check may override it (default: 60)
  --table / --no-table     Print a human table on stderr (default: when stderr is a terminal)
  -h, --help               Show this help
`,
  verify: `Usage: gather-agent verify --bundle <path> --public-key <file>

Checks the bundle's signature, manifest and member hashes; runs nothing.
Prints the bundle version, sha256 and check ids. Exit 0 when valid, 3 when refused.

Options:
  --bundle <path>          Bundle file
  --public-key <file>      ed25519 public key (SPKI PEM)
  -h, --help               Show this help
`,
  version: `Usage: gather-agent version\n\nPrints the agent version.\n`,
};

class UsageError extends Error {
  constructor(
    message: string,
    readonly command: string,
  ) {
    super(message);
  }
}

type Values = Record<string, string | boolean | undefined>;

function parse(command: string, args: string[], options: NonNullable<ParseArgsConfig['options']>): { values: Values } {
  try {
    const parsed = parseArgs({ args, options: { ...options, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: false, allowNegative: true });
    return { values: parsed.values as Values };
  } catch (error) {
    throw new UsageError((error as Error).message, command);
  }
}

function required(values: Record<string, unknown>, name: string, command: string): string {
  const value = values[name];
  if (typeof value !== 'string' || value === '') throw new UsageError(`Missing --${name}.`, command);
  return value;
}

function positiveNumber(value: string | undefined, name: string, command: string, integer: boolean): number | undefined {
  if (value === undefined) return undefined;
  const number = Number(value);
  if (!Number.isFinite(number) || number <= 0 || (integer && !Number.isInteger(number))) {
    throw new UsageError(`--${name} must be a positive ${integer ? 'integer' : 'number'} (got "${value}").`, command);
  }
  return number;
}

async function readPublicKey(path: string): Promise<string> {
  let pem: string;
  try {
    pem = await readFile(path, 'utf8');
  } catch (cause) {
    throw new ConfigError(`Cannot read the public key file ${path} (${(cause as NodeJS.ErrnoException).code}). Pass --public-key <file>.`, { cause });
  }
  parsePublicKey(pem, `public key file ${path}`);
  return pem;
}

function exitCodeFor(summary: RunSummary): number {
  if (summary.export_failed) return EXIT.EXPORT_FAILED;
  if (summary.export.spooled > 0) return EXIT.SPOOLED;
  if (summary.checks_failed + summary.checks_timed_out > 0) return EXIT.CHECKS_FAILED;
  return EXIT.OK;
}

async function commandRun(args: string[]): Promise<number> {
  const { values } = parse('run', args, {
    bundle: { type: 'string' },
    'public-key': { type: 'string' },
    category: { type: 'string', default: 'all' },
    out: { type: 'string', default: '-' },
    username: { type: 'string' },
    'instance-id': { type: 'string' },
    concurrency: { type: 'string' },
    timeout: { type: 'string' },
    table: { type: 'boolean' },
  });
  if (values.help) return help('run');
  const bundle = required(values, 'bundle', 'run');
  const publicKeyPath = required(values, 'public-key', 'run');
  const category = values.category as string;
  if (category !== 'all' && !CATEGORIES.includes(category as Category)) {
    throw new UsageError(`--category must be one of ${[...CATEGORIES, 'all'].join(', ')} (got "${category}").`, 'run');
  }
  const concurrency = positiveNumber(values.concurrency as string | undefined, 'concurrency', 'run', true);
  const timeoutSec = positiveNumber(values.timeout as string | undefined, 'timeout', 'run', false);
  const publicKey = await readPublicKey(publicKeyPath);

  const out = values.out as string;
  const exporter: Exporter = out === '-' ? createStdoutExporter() : createFileExporter({ path: out });
  const showTable = (values.table as boolean | undefined) ?? Boolean(process.stderr.isTTY);
  const rows: TableRow[] = [];
  let summary: RunSummary;
  try {
    summary = await run({
      fetcher: createFileFetcher({ path: bundle }),
      exporter,
      category: category as Category | 'all',
      publicKey,
      agentVersion: AGENT_VERSION,
      ...(concurrency ? { concurrency } : {}),
      ...(timeoutSec ? { timeoutSec } : {}),
      ...(values.username ? { username: values.username as string } : {}),
      ...(values['instance-id'] ? { instanceId: values['instance-id'] as string } : {}),
      ...(showTable ? { onCheckDone: (event: CheckDoneEvent) => void rows.push(tableRow(event)) } : {}),
    });
  } finally {
    await exporter.close().catch((error) => process.stderr.write(`${redactText(String((error as Error).message))}\n`));
  }
  if (showTable) process.stderr.write(formatTable(rows, summary));
  if (summary.export_error) process.stderr.write(`${summary.export_error}\n`);
  return exitCodeFor(summary);
}

async function commandVerify(args: string[]): Promise<number> {
  const { values } = parse('verify', args, { bundle: { type: 'string' }, 'public-key': { type: 'string' } });
  if (values.help) return help('verify');
  const bundlePath = required(values, 'bundle', 'verify');
  const publicKey = await readPublicKey(required(values, 'public-key', 'verify'));
  const fetched = await createFileFetcher({ path: bundlePath }).fetch({ dir: '' });
  const verified = verifyBundle(await readFile(fetched.path), publicKey);
  const { manifest } = verified;
  process.stdout.write(
    `ok: bundle ${manifest.version} (sha256 ${verified.sha256}, created ${manifest.created})\n` +
      CATEGORIES.map((c) => `${c}: ${manifest.checks[c].join(' ') || '(none)'}`).join('\n') +
      '\n',
  );
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
      case 'verify':
        return await commandVerify(rest);
      case 'version':
      case '--version':
        if (rest.includes('--help') || rest.includes('-h')) return help('version');
        process.stdout.write(`${AGENT_VERSION}\n`);
        return EXIT.OK;
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        return help('main');
      default:
        throw new UsageError(`Unknown command "${command}".`, 'main');
    }
  } catch (error) {
    return report(error);
  }
}

function report(error: unknown): number {
  const print = (text: string) => process.stderr.write(`${redactText(text)}\n`);
  if (error instanceof UsageError) {
    print(`gather-agent: ${error.message}\n`);
    process.stderr.write(USAGE[error.command] ?? USAGE.main!);
    return EXIT.USAGE;
  }
  if (error instanceof BundleRefusedError) {
    print(`${error.message}\nNo check was run.`);
    return EXIT.BUNDLE_REFUSED;
  }
  if (error instanceof FetchError) return print(error.message), EXIT.FETCH_FAILED;
  if (error instanceof ConfigError) return print(error.message), EXIT.USAGE;
  if (error instanceof AbortedError) return print(error.message), EXIT.INTERRUPTED;
  if (isGatherError(error)) return print(error.message), EXIT.INTERNAL;
  print(`[gather] [agent] Unexpected error (please report it): ${(error as Error)?.stack ?? String(error)}`);
  return EXIT.INTERNAL;
}

process.exitCode = await main(process.argv.slice(2));
