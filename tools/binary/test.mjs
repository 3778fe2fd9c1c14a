#!/usr/bin/env node
// pnpm test:binary — the single executables of dist/binary (pnpm build:binary) as a VM gets them:
//   - SHA256SUMS matches, and a second build gives the same bytes (reproducible);
//   - linux-x64, with no node on PATH (hidden in a private mount namespace) and no node_modules next to it:
//     a local bundle to NDJSON, and a bundle published to S3 exported to Elasticsearch (tools/services:
//     GATHER_ES_URL, GATHER_S3_*; nothing else is started);
//   - linux-arm64 under qemu-user: version, verify and run;
//   - the release tarball's install.sh --destdir: files, owners, modes, an existing config or key kept.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { delimiter, join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';

const root = resolve(fileURLToPath(import.meta.url), '../../..');
const out = resolve(process.env.GATHER_BINARY_DIR ?? join(root, 'dist/binary'));
const version = JSON.parse(readFileSync(join(root, 'packages/agent/package.json'), 'utf8')).version;
const bundleCli = join(root, 'packages/checks-bundler/bin/gather-bundle.js');
const work = mkdtempSync(join(tmpdir(), 'gather-binary-test-'));
const id = `${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
after(() => rmSync(work, { recursive: true, force: true }));

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: export the lines printed by "tools/services start" (see tools/services.md)`);
  return value;
}

function run(command, args, options = {}) {
  const result = spawnSync(command, args, { encoding: 'utf8', maxBuffer: 1 << 26, ...options });
  if (result.error) throw result.error;
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

const ndjson = (text) =>
  text
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line));
const quote = (text) => `'${text.replaceAll("'", `'\\''`)}'`;

/**
 * Runs `command args` in a private mount namespace where every node executable on PATH (and the usual
 * global node_modules and our node cache) is covered by an empty, non-executable file or directory.
 */
function withoutNode(command, args, env) {
  const nodes = new Set();
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const candidate = join(dir, 'node');
    if (dir && existsSync(candidate)) nodes.add(candidate);
  }
  nodes.add(process.execPath);
  const dirs = ['/usr/lib/node_modules', '/usr/local/lib/node_modules', join(process.env.HOME ?? '/root', '.cache/gather/node')].filter(
    (d) => existsSync(d),
  );
  const emptyFile = join(work, 'empty-file');
  const emptyDir = join(work, 'empty-dir');
  writeFileSync(emptyFile, '');
  chmodSync(emptyFile, 0o644);
  mkdirSync(emptyDir, { recursive: true });
  const script = [
    'set -e',
    ...[...nodes].map((file) => `mount --bind ${quote(emptyFile)} ${quote(file)}`),
    ...dirs.map((dir) => `mount --bind ${quote(emptyDir)} ${quote(dir)}`),
    'if command -v node >/dev/null 2>&1; then echo "node is still on PATH: $(command -v node)" >&2; exit 99; fi',
    'exec "$@"',
  ].join('\n');
  return run('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script, 'sh', command, ...args], {
    env,
    cwd: dirname(command),
  });
}

function dirname(file) {
  return resolve(file, '..');
}

/** A binary copied alone into an empty directory: no node_modules, no package.json next to it. */
function alone(arch) {
  const dir = join(work, `alone-${arch}`);
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'gather-agent');
  copyFileSync(join(out, `gather-agent-linux-${arch}`), file);
  chmodSync(file, 0o755);
  return file;
}

const keyDir = join(work, 'keys');
const privateKey = join(keyDir, 'signing.pem');
const publicKey = join(keyDir, 'signing.pub.pem');
const bundle = join(work, 'check.tar');
const marker = `gather-binary-${id}`;

before(() => {
  mkdirSync(keyDir, { recursive: true });
  const checks = join(work, 'checks');
  mkdirSync(join(checks, 'abuse'), { recursive: true });
  mkdirSync(join(checks, 'analytics'), { recursive: true });
  writeFileSync(join(checks, 'common'), 'say() { printf \'{"name":"%s","type":"%s","value":%s}\\n\' "$1" "$2" "$3"; }\n');
  writeFileSync(join(checks, 'abuse/run-bin'), `say binary.marker string '"${marker}"'\n`);
  writeFileSync(join(checks, 'analytics/run-arc'), 'say binary.bash boolean "$([ -n "$BASH_VERSION" ] && echo true || echo false)"\n');
  for (const args of [
    ['keygen', '--out-private', privateKey, '--out-public', publicKey],
    ['build', '--checks', checks, '--out', bundle, '--key', privateKey],
  ]) {
    const result = run(process.execPath, [bundleCli, ...args]);
    assert.equal(result.code, 0, result.stderr);
  }
});

describe('the build', () => {
  it('SHA256SUMS lists the binaries and tarballs of both architectures with their sha256', () => {
    const sums = readFileSync(join(out, 'SHA256SUMS'), 'utf8').trim().split('\n');
    const names = sums.map((line) => line.split(/\s+/)[1]).sort();
    assert.deepEqual(names, [
      `gather-agent-${version}-linux-arm64.tar.gz`,
      `gather-agent-${version}-linux-x64.tar.gz`,
      'gather-agent-linux-arm64',
      'gather-agent-linux-x64',
    ]);
    for (const line of sums) {
      const [sum, name] = line.split(/\s+/);
      assert.equal(
        createHash('sha256')
          .update(readFileSync(join(out, name)))
          .digest('hex'),
        sum,
        name,
      );
      process.stdout.write(`# ${name}: ${(statSync(join(out, name)).size / 1048576).toFixed(1)} MiB sha256 ${sum}\n`);
    }
  });

  it('is reproducible: a second build from the same sources gives the same bytes', {
    skip: process.env.GATHER_BINARY_SKIP_REBUILD === '1',
  }, () => {
    const again = join(work, 'again');
    const result = run(process.execPath, [join(root, 'tools/binary/build.mjs'), '--out', again], { stdio: ['ignore', 'pipe', 'inherit'] });
    assert.equal(result.code, 0);
    assert.equal(readFileSync(join(again, 'SHA256SUMS'), 'utf8'), readFileSync(join(out, 'SHA256SUMS'), 'utf8'));
  });
});

describe('linux-x64 with no node on PATH and no node_modules next to it', () => {
  const env = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', HOME: process.env.HOME ?? '/root', LANG: 'C.UTF-8' };

  it('hides node for real', () => {
    const result = withoutNode('/bin/sh', ['-c', 'node -e 0'], env);
    assert.notEqual(result.code, 0);
    assert.equal(result.code === 99, false, result.stderr);
  });

  it('runs a local bundle and writes NDJSON: results and the run summary, exit 0', () => {
    const binary = alone('x64');
    const ndjsonFile = join(work, 'local.ndjson');
    const result = withoutNode(
      binary,
      ['run', '--bundle', bundle, '--public-key', publicKey, '--out', ndjsonFile, '--state-dir', join(work, 'state-local')],
      env,
    );
    assert.equal(result.code, 0, result.stderr);
    const docs = ndjson(readFileSync(ndjsonFile, 'utf8'));
    assert.deepEqual(
      docs
        .filter((d) => d.kind === 'result')
        .map((d) => [d.check, d.name, d.value])
        .sort(),
      [
        ['arc', 'binary.bash', true],
        ['bin', 'binary.marker', marker],
      ],
    );
    const summary = docs.at(-1);
    assert.equal(summary.kind, 'run');
    assert.equal(summary.outcome, 'ok');
    assert.equal(summary.agent.version, version);
  });

  it('fetches a bundle published to S3 and exports to Elasticsearch (credentials as tools/services prints them), exit 0', async () => {
    const esUrl = required('GATHER_ES_URL');
    const s3 = {
      endpoint: required('GATHER_S3_ENDPOINT'),
      id: required('GATHER_S3_ACCESS_KEY_ID'),
      secret: required('GATHER_S3_SECRET_ACCESS_KEY'),
      bucket: required('GATHER_S3_BUCKET'),
    };
    const prefix = `binary-test/${id}`;
    const indices = { results: `gather-binary-results-${id}`, errors: `gather-binary-errors-${id}`, runs: `gather-binary-runs-${id}` };
    const s3Env = { GATHER_S3_ACCESS_KEY_ID: s3.id, GATHER_S3_SECRET_ACCESS_KEY: s3.secret };
    try {
      const published = run(
        process.execPath,
        [bundleCli, 'publish', '--bundle', bundle, '--bucket', s3.bucket, '--prefix', prefix, '--endpoint', s3.endpoint],
        { env: { ...process.env, ...s3Env } },
      );
      assert.equal(published.code, 0, published.stderr);
      const result = withoutNode(
        alone('x64'),
        [
          'run',
          '--bundle',
          `s3://${s3.bucket}/${prefix}`,
          '--public-key',
          publicKey,
          '--s3-endpoint',
          s3.endpoint,
          '--exporter',
          'elasticsearch',
          '--es-url',
          esUrl,
          '--state-dir',
          join(work, 'state-s3'),
          '--spool-dir',
          join(work, 'spool-s3'),
        ],
        {
          ...env,
          ...s3Env,
          GATHER_ES_RESULTS_INDEX: indices.results,
          GATHER_ES_ERRORS_INDEX: indices.errors,
          GATHER_ES_RUNS_INDEX: indices.runs,
        },
      );
      assert.equal(result.code, 0, result.stderr);
      await fetch(`${esUrl}/${indices.results},${indices.runs}/_refresh`, { method: 'POST' });
      const hits = async (index) =>
        ((await (await fetch(`${esUrl}/${index}/_search?size=100`)).json()).hits?.hits ?? []).map((h) => h._source);
      const results = await hits(indices.results);
      assert.deepEqual(results.map((d) => d.value).sort(), [marker, true].sort());
      const [summary] = await hits(indices.runs);
      assert.equal(summary.outcome, 'ok');
      assert.ok(summary.bytes_fetched > 0);
    } finally {
      for (const index of Object.values(indices)) {
        await fetch(`${esUrl}/${index}?ignore_unavailable=true`, { method: 'DELETE' }).catch(() => undefined);
        await fetch(`${esUrl}/_index_template/${index}-gather`, { method: 'DELETE' }).catch(() => undefined);
      }
      await deletePrefix(s3, prefix);
    }
  });
});

async function deletePrefix(s3, prefix) {
  const sdk = createRequire(join(root, 'packages/fetcher-s3/package.json'))('@aws-sdk/client-s3');
  const client = new sdk.S3Client({
    endpoint: s3.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: s3.id, secretAccessKey: s3.secret },
  });
  try {
    const listed = await client.send(new sdk.ListObjectsV2Command({ Bucket: s3.bucket, Prefix: `${prefix}/` }));
    for (const object of listed.Contents ?? []) await client.send(new sdk.DeleteObjectCommand({ Bucket: s3.bucket, Key: object.Key }));
  } finally {
    client.destroy();
  }
}

describe('linux-arm64 under qemu-user', () => {
  const qemu = ['qemu-aarch64-static', 'qemu-aarch64'].find((name) => run('sh', ['-c', `command -v ${name}`]).code === 0);
  // The official binary is linked against glibc: without an arm64 root file system, qemu takes the
  // libraries from Debian's cross packages (libc6-arm64-cross, libstdc++6-arm64-cross, libatomic1-arm64-cross).
  const env = { ...process.env, ...(existsSync('/lib/ld-linux-aarch64.so.1') ? {} : { QEMU_LD_PREFIX: '/usr/aarch64-linux-gnu' }) };
  const arm = (args) => run(qemu, [alone('arm64'), ...args], { env });

  it('has qemu-user (apt-get install qemu-user-static)', () =>
    assert.ok(qemu, 'qemu-aarch64-static is missing: apt-get install qemu-user-static'));

  it('version', () => {
    const result = arm(['version']);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, `${version}\n`);
  });

  it('verify', () => {
    const result = arm(['verify', '--bundle', bundle, '--public-key', publicKey, '--state-dir', join(work, 'state-arm')]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^ok: bundle /);
    assert.match(result.stdout, /abuse: bin/);
  });

  it('run', () => {
    const result = arm(['run', '--bundle', bundle, '--public-key', publicKey, '--state-dir', join(work, 'state-arm')]);
    assert.equal(result.code, 0, result.stderr);
    const docs = ndjson(result.stdout);
    assert.equal(docs.filter((d) => d.kind === 'result').length, 2);
    assert.equal(docs.at(-1).outcome, 'ok');
  });
});

describe('the release tarball: install.sh --destdir', () => {
  it('installs the binary, the unit and /etc/gather with owners and modes, and keeps an existing config and key', () => {
    const unpacked = join(work, 'unpacked');
    mkdirSync(unpacked);
    execFileSync('tar', ['-xzf', join(out, `gather-agent-${version}-linux-x64.tar.gz`), '-C', unpacked]);
    const installer = join(unpacked, `gather-agent-${version}-linux-x64`, 'install.sh');
    const dest = join(work, 'destdir');
    const first = run(installer, ['--destdir', dest, '--public-key', publicKey]);
    assert.equal(first.code, 0, first.stderr);
    const mode = (file) => (statSync(join(dest, file)).mode & 0o7777).toString(8);
    const owner = (file) => `${statSync(join(dest, file)).uid}:${statSync(join(dest, file)).gid}`;
    const expected = {
      'usr/local/bin/gather-agent': '755',
      'etc/systemd/system/gather-agent.service': '644',
      'etc/gather': '755',
      'etc/gather/agent.json': '600',
      'etc/gather/agent.env': '600',
      'etc/gather/signing.pub.pem': '644',
      'var/lib/gather': '700',
      'var/spool/gather': '700',
    };
    for (const [file, want] of Object.entries(expected)) {
      assert.equal(mode(file), want, file);
      if (process.getuid?.() === 0) assert.equal(owner(file), '0:0', file);
    }
    assert.match(
      readFileSync(join(dest, 'etc/systemd/system/gather-agent.service'), 'utf8'),
      /^ExecStart=\/usr\/local\/bin\/gather-agent daemon /m,
    );
    assert.equal(readFileSync(join(dest, 'etc/gather/signing.pub.pem'), 'utf8'), readFileSync(publicKey, 'utf8'));
    assert.equal(run(join(dest, 'usr/local/bin/gather-agent'), ['version']).stdout, `${version}\n`);

    // A second install (an upgrade, with another key offered) keeps the configuration and the key.
    writeFileSync(join(dest, 'etc/gather/agent.json'), '{"bundle":"/srv/mine.tar"}\n');
    const otherKey = join(work, 'other.pub.pem');
    writeFileSync(otherKey, 'not the installed key\n');
    const second = run(installer, ['--destdir', dest, '--public-key', otherKey]);
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout, /kept as they were: \/etc\/gather\/agent\.json \/etc\/gather\/agent\.env \/etc\/gather\/signing\.pub\.pem/);
    assert.equal(readFileSync(join(dest, 'etc/gather/agent.json'), 'utf8'), '{"bundle":"/srv/mine.tar"}\n');
    assert.equal(readFileSync(join(dest, 'etc/gather/signing.pub.pem'), 'utf8'), readFileSync(publicKey, 'utf8'));
    assert.equal(mode('etc/gather/agent.json'), '600');

    const bad = run(installer, ['--destdir', dest, '--nope']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /unknown option --nope/);
  });
});
