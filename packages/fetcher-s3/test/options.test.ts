// Options and command lines that are wrong are refused before any request, with a message that says how to fix them.
import { describe, expect, it } from 'vitest';
import { createS3Fetcher, s3OptionsFromEnv } from '../src/index.js';
import { publishBundle, publishCommand, rollbackCommand, type CommandIo } from '../src/publish/index.js';

describe('createS3Fetcher options', () => {
  it('needs a bucket', () => {
    expect(() => createS3Fetcher({ bucket: '', prefix: 'p' })).toThrow(
      '[gather] [fetcher-s3] Missing option "bucket". Pass it or set GATHER_S3_BUCKET.',
    );
  });

  it('needs exactly one of prefix and key', () => {
    expect(() => createS3Fetcher({ bucket: 'b' })).toThrow('Missing option "prefix"');
    expect(() => createS3Fetcher({ bucket: 'b', prefix: 'p', key: 'k' })).toThrow('not both');
  });

  it('refuses a bad endpoint, checksum setting or timeout', () => {
    expect(() => createS3Fetcher({ bucket: 'b', prefix: 'p', endpoint: 'localhost:9000' })).toThrow('Invalid option "endpoint"');
    expect(() => createS3Fetcher({ bucket: 'b', prefix: 'p', checksums: 'never' as never })).toThrow('Invalid option "checksums"');
    expect(() => createS3Fetcher({ bucket: 'b', prefix: 'p', timeoutMs: 0 })).toThrow('Invalid option "timeoutMs"');
  });

  it("refuses delays outside core's shared ranges instead of overflowing or clamping them", () => {
    expect(() => createS3Fetcher({ bucket: 'b', prefix: 'p', timeoutMs: 2 ** 31 })).toThrow(
      'Invalid option "timeoutMs" 2147483648: use a number of milliseconds from 1 to 3600000.',
    );
    expect(() => createS3Fetcher({ bucket: 'b', prefix: 'p', retry: { baseDelayMs: -5 } })).toThrow(
      'Invalid option "retry.baseDelayMs" -5: use a number of milliseconds from 0 to 60000.',
    );
    expect(() => createS3Fetcher({ bucket: 'b', prefix: 'p', retry: { maxDelayMs: 1e9 } })).toThrow('Invalid option "retry.maxDelayMs"');
    expect(() =>
      createS3Fetcher({ bucket: 'b', prefix: 'p', timeoutMs: 3_600_000, retry: { baseDelayMs: 0, maxDelayMs: 600_000 } }),
    ).not.toThrow();
  });

  it('never shows a secret of an endpoint URL in messages', () => {
    expect(() => createS3Fetcher({ bucket: 'b', prefix: 'p', endpoint: 'ftp://user:hunter22@host' })).toThrow(/user:\[redacted\]@host/);
  });

  it('is a core Fetcher named "s3"', () => {
    const fetcher = createS3Fetcher({ bucket: 'b', prefix: 'p', region: 'eu-west-1' });
    expect(fetcher.name).toBe('s3');
    expect(typeof fetcher.close).toBe('function');
  });
});

describe('publishBundle options', () => {
  it('refuses a part size below the S3 minimum of 5 MiB, before reading anything', async () => {
    await expect(publishBundle({ bucket: 'b', prefix: 'p', bundle: Buffer.alloc(0), partSizeBytes: 1024 })).rejects.toThrow(
      'Invalid option "partSizeBytes" 1024: use an integer of at least 5242880.',
    );
  });

  it('refuses something that is not a bundle', async () => {
    await expect(publishBundle({ bucket: 'b', prefix: 'p', bundle: Buffer.from('nope') })).rejects.toThrow('not a gather bundle');
  });
});

describe('GATHER_S3_* environment', () => {
  it('maps the variables; credentials only when both halves are set', () => {
    expect(
      s3OptionsFromEnv({
        GATHER_S3_BUCKET: 'b',
        GATHER_S3_PREFIX: 'p',
        GATHER_S3_ENDPOINT: 'http://127.0.0.1:9300',
        GATHER_S3_FORCE_PATH_STYLE: 'false',
        GATHER_S3_CHECKSUMS: 'when-required',
        GATHER_S3_ACCESS_KEY_ID: 'id',
        GATHER_S3_SECRET_ACCESS_KEY: 'secret',
      }),
    ).toEqual({
      bucket: 'b',
      prefix: 'p',
      endpoint: 'http://127.0.0.1:9300',
      forcePathStyle: false,
      checksums: 'when-required',
      credentials: { accessKeyId: 'id', secretAccessKey: 'secret' },
      credentialsSource: 'environment variables GATHER_S3_ACCESS_KEY_ID / GATHER_S3_SECRET_ACCESS_KEY',
    });
    expect(s3OptionsFromEnv({ GATHER_S3_ACCESS_KEY_ID: 'id' }).credentials).toBeUndefined();
    expect(() => s3OptionsFromEnv({ GATHER_S3_CHECKSUMS: 'off' })).toThrow('GATHER_S3_CHECKSUMS');
  });
});

describe('publish / rollback command lines', () => {
  function io(env: Record<string, string> = {}): CommandIo & { out: string; err: string } {
    const captured = {
      out: '',
      err: '',
      stdout: (text: string) => void (captured.out += text),
      stderr: (text: string) => void (captured.err += text),
      env,
    };
    return captured;
  }

  it('--help prints the usage on stdout and exits 0', async () => {
    const out = io();
    expect(await publishCommand(['--help'], out)).toBe(0);
    expect(out.out).toContain('Usage: gather-bundle publish --bundle <file> --bucket <name> --prefix <prefix>');
    expect(out.err).toBe('');
    const back = io();
    expect(await rollbackCommand(['-h'], back)).toBe(0);
    expect(back.out).toContain('Usage: gather-bundle rollback --to <version>');
  });

  it.each([
    [['--bucket', 'b', '--prefix', 'p'], 'Missing required option --bundle.'],
    [['--bundle', 'x.tar', '--prefix', 'p'], 'Missing required option --bucket (or set GATHER_S3_BUCKET).'],
    [['--bundle', 'x.tar', '--bucket', 'b'], 'Missing required option --prefix (or set GATHER_S3_PREFIX).'],
    [['--bundle', 'x.tar', '--bucket', 'b', '--prefix', 'p', '--secret-key', 's'], "Unknown option '--secret-key'"],
    [['--bundle', 'x.tar', '--bucket', 'b', '--prefix', 'p', '--checksums', 'off'], 'Invalid --checksums "off"'],
    [['--bundle', 'x.tar', '--bucket', 'b', '--prefix', 'p', 'extra'], 'Unexpected argument'],
  ])('publish %j is a usage error: exit 2, reason and a pointer to --help on stderr', async (argv, reason) => {
    const out = io();
    expect(await publishCommand(argv, out)).toBe(2);
    expect(out.err).toContain(reason);
    expect(out.err).toMatch(/\nRun "gather-bundle publish --help" for the options\.\n$/);
    expect(out.out).toBe('');
  });

  it('rollback without --to is a usage error', async () => {
    const out = io({ GATHER_S3_BUCKET: 'b', GATHER_S3_PREFIX: 'p' });
    expect(await rollbackCommand([], out)).toBe(2);
    expect(out.err).toContain('Missing required option --to <version>.');
    expect(out.err).toMatch(/\nRun "gather-bundle rollback --help" for the options\.\n$/);
  });

  it('a bundle file that does not exist: exit 1 with the path', async () => {
    const out = io({ GATHER_S3_BUCKET: 'b', GATHER_S3_PREFIX: 'p' });
    expect(await publishCommand(['--bundle', '/nonexistent/check.tar'], out)).toBe(1);
    expect(out.err).toContain('Cannot read the bundle /nonexistent/check.tar (ENOENT)');
  });
});
