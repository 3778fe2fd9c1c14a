#!/usr/bin/env node
// pnpm build:binary: gather-agent as one executable per architecture (linux-x64, linux-arm64), with the S3
// fetcher and the Elasticsearch exporter inside, plus a release tarball each and SHA256SUMS.
//   1. esbuild bundles tools/binary/entry.mjs (the built agent) into one ES module, and each adapter into a
//      CommonJS asset of its own, loaded on demand (tools/binary/adapters.mjs);
//   2. `node --build-sea` (Node's single executable applications) injects it into the official Node
//      binary of that architecture (debug info stripped), the newest LTS of .ci/node-lines, from the npm
//      registry (tools/node-dist); the blob is made by the x64 binary of the same version;
//   3. a tarball per architecture: the binary, the systemd unit, install.sh.
// Everything is reproducible: same sources and Node version -> same bytes (no timestamps, no paths, no code
// cache or snapshot, sorted tar members with fixed owners and mtimes, gzip without a name or time).
// Usage: node tools/binary/build.mjs [--arch x64|arm64]... [--out dir]   (default: both, dist/binary)
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { builtInsWithoutFacade } from '../../packages/agent/esbuild-built-ins.mjs';

const root = resolve(fileURLToPath(import.meta.url), '../../..');
const { values } = parseArgs({ options: { arch: { type: 'string', multiple: true }, out: { type: 'string' } } });
const arches = values.arch ?? ['x64', 'arm64'];
for (const arch of arches) {
  if (arch !== 'x64' && arch !== 'arm64') fail(`--arch must be x64 or arm64, got "${arch}"`);
}
const out = resolve(values.out ?? join(root, 'dist/binary'));
const nodeVersion =
  readFileSync(join(root, '.ci/node-lines'), 'utf8').match(/^(\d+\.\d+\.\d+)/m)?.[1] ?? fail('no version in .ci/node-lines');
const agentVersion = JSON.parse(readFileSync(join(root, 'packages/agent/package.json'), 'utf8')).version;
const work = join(out, '.work');

function fail(message) {
  process.stderr.write(`build:binary: ${message}\n`);
  process.exit(1);
}

function nodeBinary(arch) {
  const bin = execFileSync('bash', [join(root, 'tools/node-dist'), nodeVersion, `linux-${arch}`], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return join(bin.trim(), 'node');
}

// The SEA assets of the adapters (their names are read by tools/binary/adapters.mjs) and their packages.
const ADAPTER_ASSETS = { 's3.cjs': 'fetcher-s3', 'es.cjs': 'exporter-es' };

const sha256 = (file) => createHash('sha256').update(readFileSync(file)).digest('hex');

async function bundle(main, adapters) {
  for (const pkg of ['agent', 'core', 'fetcher-s3', 'exporter-es']) {
    try {
      statSync(join(root, 'packages', pkg, 'dist/index.js'));
    } catch {
      fail(`packages/${pkg}/dist is missing: run "pnpm build" first (pnpm build:binary does)`);
    }
  }
  // esbuild is a dependency of the bundler package; the binary needs nothing else at build time.
  const esbuild = createRequire(join(root, 'packages/checks-bundler/package.json'))('esbuild');
  const common = {
    absWorkingDir: root,
    bundle: true,
    platform: 'node',
    target: 'node22',
    minify: true,
    legalComments: 'eof',
    logLevel: 'warning',
  };
  const started = Date.now();
  await esbuild.build({
    ...common,
    entryPoints: [join(root, 'tools/binary/entry.mjs')],
    outfile: main,
    format: 'esm',
    // Bundled CommonJS dependencies (pino) require Node's built-in modules.
    banner: { js: "import { createRequire as __gatherRequire } from 'node:module'; const require = __gatherRequire(process.execPath);" },
    plugins: [
      builtInsWithoutFacade,
      {
        name: 'gather-agent-binary',
        setup(build) {
          // The agent package says "sideEffects": false (true of its library API), but its CLI runs on import.
          build.onResolve({ filter: /[\\/]agent[\\/]dist[\\/]cli\.js$/ }, (args) => ({
            path: resolve(args.resolveDir, args.path),
            sideEffects: true,
          }));
          // `createRequire(import.meta.url)` (our version.ts, logger.ts) would resolve files next to the
          // binary at run time; without it, esbuild bundles what they require (package.json, pino).
          build.onLoad({ filter: /[\\/]packages[\\/][^\\/]+[\\/]dist[\\/][^\\/]+\.js$/ }, (args) => {
            const text = readFileSync(args.path, 'utf8');
            return { contents: text.replace(/^const require = createRequire\(import\.meta\.url\);$/m, ''), loader: 'js' };
          });
        },
      },
    ],
  });
  // One asset per adapter: a run that exports to Elasticsearch does not evaluate the AWS SDK, nor the
  // reverse (each costs ~10 MB of RSS once evaluated). Without @gather/core: the executable passes its own.
  for (const [asset, pkg] of Object.entries(ADAPTER_ASSETS)) {
    await esbuild.build({
      ...common,
      entryPoints: [join(root, 'packages', pkg, 'dist/index.js')],
      outfile: adapters[asset],
      format: 'cjs',
      external: ['@gather/core'],
    });
  }
  const mib = (file) => `${(statSync(file).size / 1048576).toFixed(2)} MiB`;
  const sizes = Object.entries(adapters)
    .map(([asset, file]) => `${asset} ${mib(file)}`)
    .join(', ');
  process.stderr.write(`build:binary: bundled the agent (${mib(main)}) and the adapters (${sizes}) in ${Date.now() - started} ms\n`);
}

/** The V8 flags of the npm bin's shebang (`#!/usr/bin/env -S node <flags>`), so both builds start alike. */
function agentNodeFlags() {
  const shebang = readFileSync(join(root, 'packages/agent/bin/gather-agent.js'), 'utf8').split('\n', 1)[0];
  const flags = shebang.match(/^#!\/usr\/bin\/env -S node((?: --[a-z0-9-]+(?:=\S+)?)*)$/)?.[1];
  if (flags === undefined) fail(`packages/agent/bin/gather-agent.js: unexpected first line ${JSON.stringify(shebang)}`);
  return flags.trim().split(' ').filter(Boolean);
}

// The official binaries carry debug info (~33 MB) that a VM never needs; strip is deterministic.
const STRIP = { x64: 'strip', arm64: 'aarch64-linux-gnu-strip' };

function strippedNode(arch) {
  const file = join(work, `node-linux-${arch}`);
  try {
    execFileSync(STRIP[arch], ['-o', file, nodeBinary(arch)], { stdio: ['ignore', 'ignore', 'inherit'] });
  } catch (error) {
    if (error.code === 'ENOENT') fail(`${STRIP[arch]} is missing: apt-get install binutils${arch === 'arm64' ? '-aarch64-linux-gnu' : ''}`);
    throw error;
  }
  return file;
}

function buildSea(arch, main, adapters, hostNode) {
  const executable = strippedNode(arch);
  const output = join(out, `gather-agent-linux-${arch}`);
  const config = join(work, `sea-${arch}.json`);
  writeFileSync(
    config,
    JSON.stringify({
      // Relative to the work dir (the cwd of --build-sea): the blob records this path, and the same bytes
      // must come out of any checkout or --out.
      main: relative(work, main),
      mainFormat: 'module',
      executable,
      output,
      disableExperimentalSEAWarning: true,
      // A code cache or snapshot would make the bytes differ from build to build (and across arches).
      useSnapshot: false,
      useCodeCache: false,
      // The agent's own start flags: low peak RSS on the user's VM (packages/agent/bin/gather-agent.js).
      execArgv: agentNodeFlags(),
      execArgvExtension: 'none',
      assets: adapters,
    }),
  );
  const started = Date.now();
  execFileSync(hostNode, ['--build-sea', config], { cwd: work, stdio: ['ignore', 'ignore', 'inherit'] });
  chmodSync(output, 0o755);
  process.stderr.write(
    `build:binary: ${relative(root, output)} (${(statSync(output).size / 1048576).toFixed(1)} MiB, node ${nodeVersion}) in ${Date.now() - started} ms\n`,
  );
  return output;
}

function tarball(arch, binary) {
  const name = `gather-agent-${agentVersion}-linux-${arch}`;
  const stage = join(work, name);
  rmSync(stage, { recursive: true, force: true });
  mkdirSync(stage, { recursive: true });
  copyFileSync(binary, join(stage, 'gather-agent'));
  copyFileSync(join(root, 'tools/systemd/gather-agent.service'), join(stage, 'gather-agent.service'));
  copyFileSync(join(root, 'tools/binary/install.sh'), join(stage, 'install.sh'));
  copyFileSync(join(root, 'LICENSE'), join(stage, 'LICENSE'));
  for (const [file, mode] of [
    ['gather-agent', 0o755],
    ['install.sh', 0o755],
    ['gather-agent.service', 0o644],
    ['LICENSE', 0o644],
  ])
    chmodSync(join(stage, file), mode);
  chmodSync(stage, 0o755);
  const file = join(out, `${name}.tar.gz`);
  const tar = execFileSync(
    'tar',
    ['--sort=name', '--mtime=@0', '--owner=0', '--group=0', '--numeric-owner', '--format=gnu', '-C', work, '-cf', '-', name],
    { maxBuffer: 1 << 30 },
  );
  const started = Date.now();
  writeFileSync(file, execFileSync('gzip', ['-n'], { input: tar, maxBuffer: 1 << 30 }));
  process.stderr.write(
    `build:binary: ${relative(root, file)} (${(statSync(file).size / 1048576).toFixed(1)} MiB) in ${Date.now() - started} ms\n`,
  );
  return file;
}

rmSync(out, { recursive: true, force: true });
mkdirSync(work, { recursive: true });
const main = join(work, 'gather-agent.mjs');
const adapters = Object.fromEntries(Object.keys(ADAPTER_ASSETS).map((asset) => [asset, join(work, asset)]));
await bundle(main, adapters);
const hostNode = nodeBinary('x64');
const files = [];
for (const arch of arches) {
  const binary = buildSea(arch, main, adapters, hostNode);
  files.push(binary, tarball(arch, binary));
}
const sums = files.map((file) => `${sha256(file)}  ${relative(out, file)}\n`).join('');
writeFileSync(join(out, 'SHA256SUMS'), sums);
rmSync(work, { recursive: true, force: true });
process.stdout.write(sums);
