/**
 * The gather-bundle command line. `runCli` returns the exit code instead of exiting, so it can be tested
 * in-process; src/cli.ts is the thin executable around it.
 *
 * Exit codes: 0 success, 1 failure (key, I/O, verification), 2 usage error or invalid checks.
 * Commands live in COMMANDS; `publish` and `rollback` belong to @gather/fetcher-s3 and are loaded on demand.
 */
import { createHash, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { lstat, readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import {
  UsageError,
  usageErrorText,
  ConfigError,
  isGatherError,
  loadBundlePayload,
  parsePublicKey,
  readBundleFile,
  readTar,
  verifyBundle,
  type BundleManifest,
} from '@gather/core';
import {
  MANIFEST_MEMBER,
  SIGNATURE_MEMBER,
  RUNNER_MEMBER,
  parseCreated,
  parseDuration,
  validateSequence,
  validateVersion,
  writeBundle,
  writeFileAtomic,
} from './bundle.js';
import { SCOPE } from './collect.js';
import { generateSigningKeyPair, loadSigningKey } from './keys.js';
import { resignBundle } from './resign.js';

export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  env: Record<string, string | undefined>;
}

const PROGRAM = 'gather-bundle';
const PREFIX = `[gather] [${SCOPE}] `;

/** A usage error of `command` (undefined: the program's own); printed with a pointer to its --help, exit 2. */
const usageError = (message: string, command: string | undefined) => new UsageError(message, command ? { command } : {});

const GLOBAL_USAGE = `Usage: ${PROGRAM} <command> [options]

Builds the checks/ directory into a signed, obfuscated gather bundle.

Commands:
  build     Build a signed bundle from a checks directory
  keygen    Create an ed25519 signing key pair
  inspect   Print a bundle's manifest; verify it with --public-key
  publish   Upload a bundle to S3 under its version and move the latest pointer (needs @gather/fetcher-s3)
  rollback  Run a published version's checks again: republish them under a new, higher sequence (needs @gather/fetcher-s3)

Options:
  -h, --help     Show this help; "${PROGRAM} <command> --help" shows a command's options
  -v, --version  Print the version of ${PROGRAM}

Exit codes: 0 success, 1 failure, 2 usage error or invalid checks.
`;

interface Command {
  usage: string;
  options: NonNullable<ParseArgsConfig['options']>;
  run(values: Record<string, string | boolean | undefined>, io: CliIo): Promise<void>;
}

function required(values: Record<string, string | boolean | undefined>, name: string, command: string): string {
  const value = values[name];
  if (typeof value !== 'string' || value === '') throw usageError(`Missing required option --${name}.`, command);
  return value;
}

function optional(values: Record<string, string | boolean | undefined>, name: string): string | undefined {
  const value = values[name];
  return typeof value === 'string' ? value : undefined;
}

function kib(bytes: number): string {
  return `${(bytes / 1024).toFixed(1)} KiB`;
}

const BUILD_USAGE = `Usage: ${PROGRAM} build --checks <dir> --out <file> --key <private.pem> [options]

Builds the checks directory into a signed, obfuscated bundle (an uncompressed tar) and prints a
one-line summary to stderr. The output file is replaced atomically, never left partial.

Options:
  --checks <dir>          The checks directory: common, abuse/run-xyz, analytics/run-xyz (required)
  --out <file>            The bundle file to write (required)
  --key <file>            The ed25519 private key, PKCS#8 PEM (required; see "${PROGRAM} keygen")
  --bundle-version <v>    Bundle version: 1-64 chars among A-Z a-z 0-9 . _ -
                          (default: <YYYYMMDD of created>-<12 hex of the payload sha256>)
  --created <iso>         Creation time, e.g. 2024-06-01T12:00:00Z (default: $SOURCE_DATE_EPOCH,
                          else the newest modification time among the input files)
  --sequence <n>          Replay protection: agents refuse a bundle whose sequence is lower than one
                          they already accepted. Must grow with every publish (default: the creation
                          time in Unix seconds; pass e.g. $(date +%s) or a CI build number)
  --expires-in <d>        Agents refuse the bundle this long after its creation time: 30d, 12h, 90m,
                          3600s (default: never). Republish before it runs out.
  -h, --help              Show this help

Exit codes: 0 built, 1 failure (key, I/O), 2 usage error or invalid checks (every problem is listed).
`;

const build: Command = {
  usage: BUILD_USAGE,
  options: {
    checks: { type: 'string' },
    out: { type: 'string' },
    key: { type: 'string' },
    'bundle-version': { type: 'string' },
    created: { type: 'string' },
    sequence: { type: 'string' },
    'expires-in': { type: 'string' },
  },
  async run(values, io) {
    const checksDir = required(values, 'checks', 'build');
    const out = required(values, 'out', 'build');
    const privateKeyPath = required(values, 'key', 'build');
    const version = optional(values, 'bundle-version');
    const created = optional(values, 'created');
    const sequenceText = optional(values, 'sequence');
    const expiresIn = optional(values, 'expires-in');
    let sequence: number | undefined;
    let expiresInSec: number | undefined;
    try {
      if (version !== undefined) validateVersion(version, '--bundle-version');
      if (created !== undefined) parseCreated(created, '--created');
      if (sequenceText !== undefined) sequence = validateSequence(/^[0-9]+$/.test(sequenceText) ? Number(sequenceText) : NaN, '--sequence');
      if (expiresIn !== undefined) expiresInSec = parseDuration(expiresIn, '--expires-in');
    } catch (error) {
      throw usageError((error as Error).message.slice(PREFIX.length), 'build');
    }
    const started = performance.now();
    const built = await writeBundle({
      checksDir,
      out,
      privateKeyPath,
      env: io.env,
      ...(version !== undefined ? { version } : {}),
      ...(created !== undefined ? { created } : {}),
      ...(sequence !== undefined ? { sequence } : {}),
      ...(expiresInSec !== undefined ? { expiresInSec } : {}),
    });
    const ms = Math.round(performance.now() - started);
    const { abuse, analytics } = built.manifest.checks;
    io.stderr(
      `${PREFIX}Built ${out}: version ${built.manifest.version}, sequence ${built.manifest.sequence}` +
        `${built.manifest.expires_at ? `, expires ${built.manifest.expires_at}` : ''}, sha256 ${built.sha256}, ` +
        `${abuse.length} abuse + ${analytics.length} analytics checks, ${kib(built.bytes.length)} in ${ms} ms.\n`,
    );
  },
};

const KEYGEN_USAGE = `Usage: ${PROGRAM} keygen --out-private <file> --out-public <file> [--force]

Creates an ed25519 key pair for signing bundles: the private key (PKCS#8 PEM, mode 0600) goes into
your CI secrets, the public key (SPKI PEM) ships with the agent.

Options:
  --out-private <file>    Where to write the private key (required)
  --out-public <file>     Where to write the public key (required)
  --force                 Overwrite existing files (bundles signed with the old key will no longer verify)
  -h, --help              Show this help
`;

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  );
}

const keygen: Command = {
  usage: KEYGEN_USAGE,
  options: {
    'out-private': { type: 'string' },
    'out-public': { type: 'string' },
    force: { type: 'boolean' },
  },
  async run(values, io) {
    const outPrivate = required(values, 'out-private', 'keygen');
    const outPublic = required(values, 'out-public', 'keygen');
    if (resolve(outPrivate) === resolve(outPublic)) {
      throw usageError('--out-private and --out-public must be different files.', 'keygen');
    }
    if (values.force !== true) {
      for (const path of [outPrivate, outPublic]) {
        if (await exists(path)) {
          throw new ConfigError(
            `${path} already exists; not overwriting a key. Pass --force to replace it ` +
              '(bundles signed with the old private key will no longer verify with the new public key).',
            { scope: SCOPE },
          );
        }
      }
    }
    const { privateKeyPem, publicKeyPem } = generateSigningKeyPair();
    await writeFileAtomic(outPrivate, Buffer.from(privateKeyPem), 0o600);
    await writeFileAtomic(outPublic, Buffer.from(publicKeyPem), 0o644);
    io.stderr(
      `${PREFIX}Wrote the private key ${outPrivate} (mode 0600: store it as a CI secret, never commit it) ` +
        `and the public key ${outPublic} (ship it with the agent).\n`,
    );
  },
};

const INSPECT_USAGE = `Usage: ${PROGRAM} inspect --bundle <file> [--public-key <file>]

Prints the bundle's manifest (JSON) to stdout. With --public-key, verifies the signature and every
member hash, and decodes the runner, exactly as the agent does; exits 1 if the bundle is refused.

Options:
  --bundle <file>         The bundle file (required)
  --public-key <file>     The ed25519 public key PEM to verify against
  -h, --help              Show this help
`;

async function readInput(path: string, what: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code ?? 'error';
    throw new ConfigError(`Cannot read the ${what} ${path} (${code}); check the path.`, { scope: SCOPE, cause });
  }
}

/** A --public-key that is not an ed25519 public key (a private key, an RSA key...) is a usage error: exit 2. */
function publicKeyArgument(pem: Buffer, path: string, command: string): KeyObject {
  try {
    return parsePublicKey(pem, `--public-key ${path}`);
  } catch (error) {
    throw usageError((error as Error).message.replace(/^\[gather\] /, ''), command);
  }
}

const inspect: Command = {
  usage: INSPECT_USAGE,
  options: {
    bundle: { type: 'string' },
    'public-key': { type: 'string' },
  },
  async run(values, io) {
    const bundlePath = required(values, 'bundle', 'inspect');
    const publicKeyPath = optional(values, 'public-key');
    const publicKey =
      publicKeyPath === undefined ? undefined : publicKeyArgument(await readInput(publicKeyPath, 'public key'), publicKeyPath, 'inspect');
    // Sized before it is read: a multi-GB file is refused like the agent refuses it, never loaded.
    const bytes = await readBundleFile(bundlePath).catch((cause: unknown) => {
      if (isGatherError(cause)) throw cause;
      const code = (cause as NodeJS.ErrnoException).code ?? 'error';
      throw new ConfigError(`Cannot read the bundle ${bundlePath} (${code}); check the path.`, { scope: SCOPE, cause });
    });
    let manifest: BundleManifest;
    let status: string;
    if (publicKey !== undefined) {
      const verified = verifyBundle(bytes, publicKey);
      const payload = loadBundlePayload(verified);
      manifest = verified.manifest;
      status = `signature valid for ${publicKeyPath}; ${RUNNER_MEMBER} decodes ${payload.checks.length} checks.`;
    } else {
      let entries;
      try {
        entries = readTar(bytes);
      } catch (cause) {
        throw new ConfigError(`${bundlePath} is not a gather bundle (${(cause as Error).message}).`, {
          scope: SCOPE,
          cause,
        });
      }
      const names = entries.map((entry) => entry.name);
      const manifestEntry = entries.find((entry) => entry.name === MANIFEST_MEMBER);
      if (!manifestEntry || names.join() !== [MANIFEST_MEMBER, SIGNATURE_MEMBER, RUNNER_MEMBER].join()) {
        throw new ConfigError(`${bundlePath} is not a gather bundle (members: ${names.join(', ') || 'none'}).`, {
          scope: SCOPE,
        });
      }
      manifest = JSON.parse(manifestEntry.data.toString('utf8')) as BundleManifest;
      status = 'signature NOT verified (pass --public-key <file> to verify).';
    }
    io.stdout(JSON.stringify(manifest, null, 2) + '\n');
    io.stderr(`${PREFIX}${bundlePath}: sha256 ${createHash('sha256').update(bytes).digest('hex')}; ${status}\n`);
  },
};

const COMMANDS: Record<string, Command> = { build, keygen, inspect };

function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

// The AWS SDK is only needed to publish, so it stays an optional peer: building bundles does not pull it in.
async function loadS3Commands(): Promise<typeof import('@gather/fetcher-s3/publish')> {
  try {
    return await import('@gather/fetcher-s3/publish');
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    // An @gather/fetcher-s3 from before the /publish entry existed says "not exported": same fix, a current one.
    if (code !== 'ERR_MODULE_NOT_FOUND' && code !== 'ERR_PACKAGE_PATH_NOT_EXPORTED') throw cause;
    throw new ConfigError(
      'publish and rollback need @gather/fetcher-s3. Install it next to @gather/checks-bundler: npm i -D @gather/fetcher-s3.',
      { scope: SCOPE, cause },
    );
  }
}

/** The signer `gather-bundle rollback --key` hands to @gather/fetcher-s3: re-signs an old bundle under a new sequence. */
async function rollbackSigner(options: { keyPath: string; expiresIn?: string }) {
  let expiresInSec: number | undefined;
  try {
    if (options.expiresIn !== undefined) expiresInSec = parseDuration(options.expiresIn, '--expires-in');
  } catch (error) {
    throw usageError((error as Error).message.slice(PREFIX.length), 'rollback');
  }
  const privateKeyPem = await readInput(options.keyPath, 'signing key');
  await loadSigningKey({ privateKeyPem });
  return async (bundle: Buffer, sequence: number) =>
    (await resignBundle(bundle, { privateKeyPem, sequence, ...(expiresInSec !== undefined ? { expiresInSec } : {}) })).bytes;
}

function report(error: unknown, io: CliIo): number {
  if (UsageError.isInstance(error)) {
    io.stderr(`${usageErrorText(PROGRAM, error)}\n`);
    return 2;
  }
  if (isGatherError(error)) {
    io.stderr(`${error.message}\n`);
    return error.code === 'GATHER_CHECKS_INVALID' || error.code === 'GATHER_USAGE' ? 2 : 1;
  }
  const detail = error instanceof Error ? (error.stack ?? error.message) : String(error);
  io.stderr(`${PREFIX}Unexpected error (please report it): ${detail}\n`);
  return 1;
}

/** Runs the CLI with `argv` (without node and the script path); resolves with the exit code. */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  const [first, ...rest] = argv;
  try {
    if (first === undefined) throw usageError('Missing command.', undefined);
    if (first === '-h' || first === '--help' || (first === 'help' && rest.length === 0)) {
      io.stdout(GLOBAL_USAGE);
      return 0;
    }
    if (first === '-v' || first === '--version') {
      io.stdout(`${packageVersion()}\n`);
      return 0;
    }
    const s3Command = first === 'help' ? rest[0] : first;
    if ((s3Command === 'publish' || s3Command === 'rollback') && (first !== 'help' || rest.length === 1)) {
      const s3 = await loadS3Commands();
      const args = first === 'help' ? ['--help'] : [...rest];
      if (s3Command === 'publish') return await s3.publishCommand(args, io);
      return await s3.rollbackCommand(args, io, { signer: rollbackSigner });
    }
    if (first === 'help') {
      const command = COMMANDS[rest[0] ?? ''];
      if (!command || rest.length > 1) throw usageError(`Unknown command ${JSON.stringify(rest.join(' '))}.`, undefined);
      io.stdout(command.usage);
      return 0;
    }

    const command = Object.hasOwn(COMMANDS, first) ? COMMANDS[first] : undefined;
    if (!command) {
      throw usageError(
        first.startsWith('-')
          ? `Unknown option ${JSON.stringify(first)}; put the command first.`
          : `Unknown command ${JSON.stringify(first)}.`,
        undefined,
      );
    }
    let values: Record<string, string | boolean | undefined>;
    try {
      ({ values } = parseArgs({
        args: [...rest],
        options: { ...command.options, help: { type: 'boolean', short: 'h' } },
        strict: true,
        allowPositionals: false,
      }) as { values: Record<string, string | boolean | undefined> });
    } catch (error) {
      throw usageError(`${first}: ${(error as Error).message}`, first);
    }
    if (values.help === true) {
      io.stdout(command.usage);
      return 0;
    }
    await command.run(values, io);
    return 0;
  } catch (error) {
    return report(error, io);
  }
}
