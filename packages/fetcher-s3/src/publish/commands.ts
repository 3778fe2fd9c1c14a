/**
 * `gather-bundle publish` and `gather-bundle rollback`, as functions returning the exit code, for the
 * gather-bundle CLI of @gather/checks-bundler to dispatch to.
 *
 * Exit codes: 0 success, 1 failure (S3, I/O, refused overwrite), 2 usage error (the problem and a pointer to --help on stderr).
 */
import { readFile } from 'node:fs/promises';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { isGatherError, parsePublicKey, UsageError, usageErrorText } from '@gather/core';
import { SCOPE, type S3ConnectionOptions } from '../client.js';
import { s3OptionsFromEnv } from '../env.js';
import { publishBundle } from './publish.js';
import { rollbackBundle, type BundleSigner } from './rollback.js';

export interface CommandIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  env: Record<string, string | undefined>;
}

const defaultIo = (): CommandIo => ({
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  env: process.env,
});

const CONNECTION_HELP = `S3 options:
  --bucket <name>          Bucket (default: $GATHER_S3_BUCKET)
  --prefix <prefix>        Key prefix, e.g. gather/prod (default: $GATHER_S3_PREFIX)
  --endpoint <url>         S3-compatible endpoint (default: $GATHER_S3_ENDPOINT; AWS S3 when unset)
  --region <region>        Region (default: $GATHER_S3_REGION, then the AWS SDK chain; us-east-1 with --endpoint)
  --force-path-style       Path-style URLs (the default with --endpoint)
  --checksums <mode>       default | when-required (default: $GATHER_S3_CHECKSUMS or default); use
                           when-required for S3-compatible servers that reject the SDK's checksums
  --json                   Print the result as JSON
  -h, --help               Show this help

Credentials: the AWS SDK default chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_PROFILE, web
identity in CI, instance role), or GATHER_S3_ACCESS_KEY_ID + GATHER_S3_SECRET_ACCESS_KEY when both are set.
Never pass secrets as flags.

Exit codes: 0 success, 1 failure, 2 usage error.
`;

export const PUBLISH_USAGE = `Usage: gather-bundle publish --bundle <file> --bucket <name> --prefix <prefix> [options]

Uploads a bundle to s3://<bucket>/<prefix>/<version>.tar (the version comes from its manifest; a
published version is never overwritten) and then moves the pointer <prefix>/latest to it. Agents
follow the pointer, so none ever reads a half-written bundle.

Options:
  --bundle <file>          Bundle built by "gather-bundle build" (required)
  --public-key <file>      Verify the bundle with this ed25519 public key before uploading
  --no-move                Upload only; move the pointer later with "gather-bundle rollback --to <version>"
  --multipart-threshold-mib <n>  Upload in parts from this size on (default 8)
${CONNECTION_HELP}`;

export const ROLLBACK_USAGE = `Usage: gather-bundle rollback --to <version> --key <private.pem> --bucket <name> --prefix <prefix> [options]

Makes agents run the checks of an already published version again. Agents refuse a bundle older (lower
sequence) than the one they run, so the old version is republished as a new version, <version>-r<sequence>,
with a higher sequence, signed again with --key, and <prefix>/latest moves to it. A version newer than the
current one (uploaded with publish --no-move) needs no key: the pointer just moves (roll forward).
Lists the published versions when <version> does not exist.

Options:
  --to <version>           Published version whose checks should run (required)
  --key <file>             The ed25519 signing key (PKCS#8 PEM), needed to roll back
  --sequence <n>           Sequence of the republished bundle (default: one more than the current one)
  --expires-in <d>         Expiry of the republished bundle, from now: 30d, 12h... (default: the old
                           bundle's lifetime, if it had one)
${CONNECTION_HELP}`;

/** What gather-bundle (which holds the signing code) gives the rollback command. */
export interface RollbackCommandDeps {
  /** Builds a signer from the --key file and --expires-in text; throws a GatherError on a bad key or duration. */
  signer?: (options: { keyPath: string; expiresIn?: string }) => Promise<BundleSigner>;
}

const CONNECTION_OPTIONS = {
  bucket: { type: 'string' },
  prefix: { type: 'string' },
  endpoint: { type: 'string' },
  region: { type: 'string' },
  'force-path-style': { type: 'boolean' },
  checksums: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies NonNullable<ParseArgsConfig['options']>;

/** A usage error of `command`; printed with a pointer to its --help, exit 2. */
const usageError = (message: string, command: string) => new UsageError(message, { command });

type Values = Record<string, string | boolean | undefined>;

function parse(argv: readonly string[], options: NonNullable<ParseArgsConfig['options']>, command: string): Values {
  try {
    return parseArgs({ args: [...argv], options, strict: true, allowPositionals: false }).values as Values;
  } catch (error) {
    throw usageError(`${command}: ${(error as Error).message}`, command);
  }
}

function connection(values: Values, io: CommandIo, usageCommand: string): S3ConnectionOptions & { bucket: string; prefix: string } {
  const env = s3OptionsFromEnv(io.env);
  const str = (name: string) => (typeof values[name] === 'string' && values[name] !== '' ? (values[name] as string) : undefined);
  const bucket = str('bucket') ?? env.bucket;
  const prefix = str('prefix') ?? env.prefix;
  if (!bucket) throw usageError('Missing required option --bucket (or set GATHER_S3_BUCKET).', usageCommand);
  if (!prefix) throw usageError('Missing required option --prefix (or set GATHER_S3_PREFIX).', usageCommand);
  const checksums = str('checksums') ?? env.checksums;
  if (checksums !== undefined && checksums !== 'default' && checksums !== 'when-required') {
    throw usageError(`Invalid --checksums ${JSON.stringify(checksums)}: use default or when-required.`, usageCommand);
  }
  const out: S3ConnectionOptions & { bucket: string; prefix: string } = { bucket, prefix };
  const endpoint = str('endpoint') ?? env.endpoint;
  if (endpoint) out.endpoint = endpoint;
  const region = str('region') ?? env.region;
  if (region) out.region = region;
  if (values['force-path-style'] === true) out.forcePathStyle = true;
  else if (env.forcePathStyle !== undefined) out.forcePathStyle = env.forcePathStyle;
  if (checksums) out.checksums = checksums;
  if (env.credentials) {
    out.credentials = env.credentials;
    if (env.credentialsSource) out.credentialsSource = env.credentialsSource;
  }
  return out;
}

function report(error: unknown, io: CommandIo): number {
  if (UsageError.isInstance(error)) {
    io.stderr(`${usageErrorText('gather-bundle', error)}\n`);
    return 2;
  }
  if (isGatherError(error)) {
    io.stderr(`${error.message}\n`);
    return error.code === 'GATHER_USAGE' ? 2 : 1;
  }
  const detail = error instanceof Error ? (error.stack ?? error.message) : String(error);
  io.stderr(`[gather] [${SCOPE}] Unexpected error (please report it): ${detail}\n`);
  return 1;
}

/** `gather-bundle publish ...` (argv without the command name); resolves with the exit code. */
export async function publishCommand(argv: string[], io: CommandIo = defaultIo()): Promise<number> {
  try {
    const values = parse(
      argv,
      {
        ...CONNECTION_OPTIONS,
        bundle: { type: 'string' },
        'public-key': { type: 'string' },
        'no-move': { type: 'boolean' },
        'multipart-threshold-mib': { type: 'string' },
      },
      'publish',
    );
    if (values.help === true) {
      io.stdout(PUBLISH_USAGE);
      return 0;
    }
    const bundlePath = typeof values.bundle === 'string' && values.bundle ? values.bundle : undefined;
    if (!bundlePath) throw usageError('Missing required option --bundle.', 'publish');
    const conn = connection(values, io, 'publish');
    let threshold: number | undefined;
    if (typeof values['multipart-threshold-mib'] === 'string') {
      const mib = Number(values['multipart-threshold-mib']);
      if (!Number.isInteger(mib) || mib < 1 || mib > 64) {
        throw usageError('Invalid --multipart-threshold-mib: use an integer from 1 to 64.', 'publish');
      }
      threshold = mib * 1024 * 1024;
    }
    let publicKeyPem: Buffer | undefined;
    if (typeof values['public-key'] === 'string') {
      const path = values['public-key'];
      publicKeyPem = await readFile(path).catch((cause: NodeJS.ErrnoException) => {
        throw usageError(`Cannot read --public-key ${path} (${cause.code ?? cause.message}).`, 'publish');
      });
      try {
        parsePublicKey(publicKeyPem, `--public-key ${path}`);
      } catch (error) {
        throw usageError((error as Error).message.replace(/^\[gather\] /, ''), 'publish');
      }
    }
    const result = await publishBundle({
      ...conn,
      bundlePath,
      ...(publicKeyPem ? { publicKeyPem } : {}),
      ...(threshold !== undefined ? { multipartThresholdBytes: threshold } : {}),
      ...(values['no-move'] === true ? { movePointer: false } : {}),
    });
    if (values.json === true) {
      io.stdout(JSON.stringify(result) + '\n');
    } else {
      const how = !result.uploaded
        ? 'already published with the same content, nothing uploaded'
        : result.parts > 0
          ? `uploaded in ${result.parts} parts`
          : 'uploaded';
      io.stdout(
        `Published ${result.version} to s3://${result.bucket}/${result.key} (${result.size} bytes, sha256 ${result.sha256}; ${how}).\n`,
      );
      if (values['no-move'] === true) {
        io.stdout(`Pointer s3://${result.bucket}/${result.pointerKey} not moved (--no-move).\n`);
      } else {
        io.stdout(pointerLine(result));
      }
    }
    return 0;
  } catch (error) {
    return report(error, io);
  }
}

/** What happened to `<prefix>/latest`, for publish and rollback alike. */
function pointerLine(result: {
  bucket: string;
  pointerKey: string;
  version: string;
  pointerMoved: boolean;
  previousVersion?: string | undefined;
}): string {
  if (!result.pointerMoved) return `Pointer s3://${result.bucket}/${result.pointerKey} already named ${result.version}.\n`;
  const was = result.previousVersion ? ` (was ${result.previousVersion})` : '';
  return `Pointer s3://${result.bucket}/${result.pointerKey} -> ${result.version}${was}.\n`;
}

/** `gather-bundle rollback ...` (argv without the command name); resolves with the exit code. */
export async function rollbackCommand(argv: string[], io: CommandIo = defaultIo(), deps: RollbackCommandDeps = {}): Promise<number> {
  try {
    const values = parse(
      argv,
      {
        ...CONNECTION_OPTIONS,
        to: { type: 'string' },
        key: { type: 'string' },
        sequence: { type: 'string' },
        'expires-in': { type: 'string' },
      },
      'rollback',
    );
    if (values.help === true) {
      io.stdout(ROLLBACK_USAGE);
      return 0;
    }
    const to = typeof values.to === 'string' && values.to ? values.to : undefined;
    if (!to) throw usageError('Missing required option --to <version>.', 'rollback');
    let sequence: number | undefined;
    if (typeof values.sequence === 'string') {
      sequence = /^[0-9]{1,15}$/.test(values.sequence) ? Number(values.sequence) : NaN;
      if (!Number.isSafeInteger(sequence))
        throw usageError(`Invalid --sequence ${JSON.stringify(values.sequence)}: use a whole number.`, 'rollback');
    }
    const keyPath = typeof values.key === 'string' && values.key ? values.key : undefined;
    const expiresIn = typeof values['expires-in'] === 'string' ? values['expires-in'] : undefined;
    if (expiresIn !== undefined && !keyPath)
      throw usageError('--expires-in needs --key: it is part of the re-signed manifest.', 'rollback');
    let sign: BundleSigner | undefined;
    if (keyPath) {
      if (!deps.signer)
        throw usageError(
          '--key needs gather-bundle (@gather/checks-bundler), which signs bundles: run "gather-bundle rollback".',
          'rollback',
        );
      sign = await deps.signer({ keyPath, ...(expiresIn !== undefined ? { expiresIn } : {}) });
    }
    const result = await rollbackBundle({
      ...connection(values, io, 'rollback'),
      to,
      ...(sign ? { sign } : {}),
      ...(sequence !== undefined ? { sequence } : {}),
    });
    if (values.json === true) {
      io.stdout(JSON.stringify(result) + '\n');
    } else {
      if (result.republished) {
        io.stdout(
          `Republished the checks of ${result.from} as ${result.version} (sequence ${result.sequence}) at s3://${result.bucket}/${result.key}.\n`,
        );
      }
      io.stdout(pointerLine(result));
    }
    return 0;
  } catch (error) {
    return report(error, io);
  }
}
