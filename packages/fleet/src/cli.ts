#!/usr/bin/env node
/** gather-fleet: the operator's questions about the fleet, one command each (see the package README). */
import { readFileSync, realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { Client } from '@elastic/elasticsearch';
import { isGatherError, redactText, UsageError, usageErrorText } from '@gather/core';
import { createEsExporter } from '@gather/exporter-es';
import { formatAbused, formatHost, formatHosts, formatSummary, formatTable } from './format.js';
import { DEFAULT_INDICES, Fleet, MissingIndexError, UnreachableError, type FleetIndices } from './queries.js';

/** Exit codes of gather-fleet. */
export const FLEET_EXIT = { OK: 0, INTERNAL: 1, USAGE: 2, UNREACHABLE: 3, MISSING: 4, NOT_FOUND: 5 } as const;

const USAGE = `Usage: gather-fleet <command> [options]

Commands:
  abused                     Hosts with any abuse.*.detected true now, with the evidence, newest first
  silent --since <dur>       Hosts whose last run is older than <dur> (e.g. 30m, 2h, 1d)
  host <id|hostname>         The current state of one host, grouped by check
  summary                    Hosts per outcome, agent and bundle version; top analytics results
  prune --keep-days <n>      Delete daily indices older than n days (--dry-run: list them)
  setup                      Install the index templates without an agent run

Options:
  --json                     Machine-readable output
  --es-url <url>             Elasticsearch URL   [GATHER_ES_URL]
  --es-api-key-file <f>      File holding the API key   [GATHER_ES_API_KEY_FILE, or GATHER_ES_API_KEY]
  --es-username <u>          With --es-password-file   [GATHER_ES_USERNAME]
  --es-password-file <f>     File holding the password   [GATHER_ES_PASSWORD_FILE, or GATHER_ES_PASSWORD]
  --es-ca-file <f>           CA (PEM) of the cluster's certificate   [GATHER_ES_CA_FILE]
  Index names: GATHER_ES_RESULTS_INDEX, _ERRORS_INDEX, _RUNS_INDEX, _LATEST_INDEX, _HOSTS_INDEX (as the agent's)
  -h, --help                 Show this help

Exit codes: 0 ok, 1 internal error, 2 usage error, 3 Elasticsearch unreachable or refused the request,
4 indices missing (run "gather-fleet setup", let agents report), 5 host not found.
`;

export function parseDuration(text: string): number {
  const match = /^(\d+(?:\.\d+)?)(s|m|h|d)$/.exec(text.trim());
  if (!match) throw new UsageError(`--since "${text}" is not a duration: use e.g. 30m, 2h or 1d`);
  return Number(match[1]) * { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[match[2] as 's' | 'm' | 'h' | 'd'];
}

function connection(values: Record<string, string | boolean | undefined>, env: NodeJS.ProcessEnv) {
  const str = (flag: string, name: string) => (typeof values[flag] === 'string' ? (values[flag] as string) : env[name] || undefined);
  const file = (path: string | undefined, what: string) => {
    if (!path) return undefined;
    try {
      return readFileSync(path, 'utf8').replace(/\r?\n$/, '');
    } catch (error) {
      throw new UsageError(`cannot read ${what} ${path} (${(error as NodeJS.ErrnoException).code})`);
    }
  };
  const url = str('es-url', 'GATHER_ES_URL');
  if (!url) throw new UsageError('Missing --es-url (or GATHER_ES_URL)');
  const apiKey = file(str('es-api-key-file', 'GATHER_ES_API_KEY_FILE'), 'the API key file') ?? env.GATHER_ES_API_KEY;
  const username = str('es-username', 'GATHER_ES_USERNAME');
  const password = file(str('es-password-file', 'GATHER_ES_PASSWORD_FILE'), 'the password file') ?? env.GATHER_ES_PASSWORD;
  const ca = file(str('es-ca-file', 'GATHER_ES_CA_FILE'), 'the CA file');
  const auth = apiKey ? { apiKey } : username ? { username, password: password ?? '' } : undefined;
  const indices: FleetIndices = {
    resultsIndex: env.GATHER_ES_RESULTS_INDEX || DEFAULT_INDICES.resultsIndex,
    errorsIndex: env.GATHER_ES_ERRORS_INDEX || DEFAULT_INDICES.errorsIndex,
    runsIndex: env.GATHER_ES_RUNS_INDEX || DEFAULT_INDICES.runsIndex,
    latestIndex: env.GATHER_ES_LATEST_INDEX || DEFAULT_INDICES.latestIndex,
    hostsIndex: env.GATHER_ES_HOSTS_INDEX || DEFAULT_INDICES.hostsIndex,
  };
  const secrets = [apiKey, password].filter((s): s is string => !!s);
  return { url, auth, ca, indices, secrets };
}

export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  env: NodeJS.ProcessEnv;
  now?: () => Date;
}

/** node:util's parseArgs, its complaints (unknown option, missing value...) as usage errors. */
function parseCommandLine<T extends ParseArgsConfig>(config: T): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config);
  } catch (error) {
    throw new UsageError((error as Error).message, { cause: error });
  }
}

/** Runs one command; returns the exit code. */
export async function main(argv: string[], io: CliIo): Promise<number> {
  let secrets: string[] = [];
  try {
    const { values, positionals } = parseCommandLine({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        json: { type: 'boolean' },
        since: { type: 'string' },
        'keep-days': { type: 'string' },
        'dry-run': { type: 'boolean' },
        'es-url': { type: 'string' },
        'es-api-key-file': { type: 'string' },
        'es-username': { type: 'string' },
        'es-password-file': { type: 'string' },
        'es-ca-file': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
    const [command, ...rest] = positionals;
    if (values.help || !command) {
      (values.help ? io.stdout : io.stderr)(USAGE);
      return values.help ? FLEET_EXIT.OK : FLEET_EXIT.USAGE;
    }
    if (!['abused', 'silent', 'host', 'summary', 'prune', 'setup'].includes(command)) throw new UsageError(`unknown command "${command}"`);
    if (command !== 'host' && rest.length > 0) throw new UsageError(`unexpected argument "${rest[0]}"`);
    // Checked before connecting: a usage error never waits for the network.
    const since =
      command === 'silent'
        ? parseDuration(
            values.since ??
              (() => {
                throw new UsageError('silent needs --since <duration>, e.g. --since 2h');
              })(),
          )
        : 0;
    const keepDays = command === 'prune' ? Number(values['keep-days']) : 0;
    if (command === 'prune' && !(Number.isInteger(keepDays) && keepDays >= 1))
      throw new UsageError('prune needs --keep-days <n>, a whole number of days >= 1');
    if (command === 'host' && rest.length !== 1) throw new UsageError('host needs one argument: a host.id or a hostname');

    const conn = connection(values, io.env);
    secrets = conn.secrets;
    const json = values.json === true;
    const print = (data: unknown, human: () => string) => io.stdout(json ? `${JSON.stringify(data, null, 2)}\n` : human());

    if (command === 'setup') {
      const exporter = createEsExporter({
        node: conn.url,
        ...(conn.auth ? { auth: conn.auth } : {}),
        ...(conn.ca ? { tls: { ca: conn.ca } } : {}),
        ...conn.indices,
        currentState: true,
        maxRetries: 1,
      });
      try {
        await exporter.setup();
      } catch (error) {
        throw new UnreachableError((error as Error).message.replace(/^\[gather\] \[exporter-es\] /, ''), { cause: error });
      } finally {
        await exporter.close().catch(() => undefined);
      }
      const installed = Object.values(conn.indices);
      print({ installed }, () => `Installed the templates of ${installed.join(', ')}.\n`);
      return FLEET_EXIT.OK;
    }

    const client = new Client({
      node: conn.url,
      ...(conn.auth ? { auth: conn.auth } : {}),
      ...(conn.ca ? { tls: { ca: conn.ca } } : {}),
      maxRetries: 1,
      requestTimeout: 30_000,
    });
    const fleet = new Fleet(client, new URL(conn.url).host, conn.indices);
    const now = io.now?.() ?? new Date();
    try {
      switch (command) {
        case 'abused': {
          const hosts = await fleet.abused();
          print(hosts, () => formatAbused(hosts));
          return FLEET_EXIT.OK;
        }
        case 'silent': {
          const hosts = await fleet.silent(since, now);
          print(hosts, () => formatHosts(hosts, `No host silent for ${values.since}.`));
          return FLEET_EXIT.OK;
        }
        case 'host': {
          const found = await fleet.host(rest[0]!);
          if (!found) {
            io.stderr(`[gather] [fleet] No host "${rest[0]}" in ${conn.indices.hostsIndex} (neither a host.id nor a hostname).\n`);
            return FLEET_EXIT.NOT_FOUND;
          }
          print(found, () => formatHost(found));
          return FLEET_EXIT.OK;
        }
        case 'summary': {
          const summary = await fleet.summary();
          print(summary, () => formatSummary(summary));
          return FLEET_EXIT.OK;
        }
        default: {
          const dryRun = values['dry-run'] === true;
          const expired = await fleet.prune(keepDays, dryRun, now);
          print({ dry_run: dryRun, keep_days: keepDays, indices: expired }, () =>
            expired.length === 0
              ? `No daily index older than ${keepDays} days.\n`
              : `${dryRun ? 'Would delete' : 'Deleted'} ${expired.length} daily indices:\n${formatTable(
                  ['INDEX'],
                  expired.map((i) => [i]),
                )}`,
          );
          return FLEET_EXIT.OK;
        }
      }
    } finally {
      await client.close().catch(() => undefined);
    }
  } catch (error) {
    const message = redactText((error as Error).message ?? String(error), secrets);
    if (UsageError.isInstance(error)) {
      io.stderr(`${redactText(usageErrorText('gather-fleet', error), secrets)}\n`);
      return FLEET_EXIT.USAGE;
    }
    io.stderr(`${isGatherError(error) ? message : `[gather] [fleet] ${message}`}\n`);
    if (MissingIndexError.isInstance(error)) return FLEET_EXIT.MISSING;
    if (UnreachableError.isInstance(error)) return FLEET_EXIT.UNREACHABLE;
    return FLEET_EXIT.INTERNAL;
  }
}

function isMain(): boolean {
  try {
    return !!process.argv[1] && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url);
  } catch {
    return false;
  }
}

if (isMain()) {
  main(process.argv.slice(2), { stdout: (t) => process.stdout.write(t), stderr: (t) => process.stderr.write(t), env: process.env }).then(
    (code) => {
      process.exitCode = code;
    },
  );
}
