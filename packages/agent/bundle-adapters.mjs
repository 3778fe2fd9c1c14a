#!/usr/bin/env node
// Part of the package's build (after tsc): the S3 fetcher and the Elasticsearch exporter, each bundled with
// its SDK into one ES module of dist/adapters/ (esbuild, minified), which the bin registers for
// src/adapters.ts as the single binary registers its own (tools/binary/adapters.mjs). One file per adapter
// instead of the ~40 (S3) and ~460 (Elasticsearch) modules of the installed packages: ~7 MB less peak RSS on
// the Elasticsearch path (README "Benchmarks", tools/bench/rss). @gather/core stays outside, so the agent
// and the adapters share one instance of it (its errors and classes).
import { realpathSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
// esbuild comes with the bundler package (a devDependency here); the agent itself needs nothing new.
const esbuild = createRequire(join(realpathSync(join(here, 'node_modules/@gather/checks-bundler')), 'package.json'))('esbuild');
const ADAPTERS = { 'fetcher-s3': '@gather/fetcher-s3', 'exporter-es': '@gather/exporter-es' };

for (const [name, specifier] of Object.entries(ADAPTERS)) {
  await esbuild.build({
    absWorkingDir: here,
    entryPoints: [specifier],
    outfile: join(here, 'dist/adapters', `${name}.js`),
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node22',
    minify: true,
    legalComments: 'eof',
    logLevel: 'warning',
    external: ['@gather/core'],
    // The SDKs are CommonJS and require Node's built-in modules.
    banner: { js: "import { createRequire as __gatherRequire } from 'node:module'; const require = __gatherRequire(import.meta.url);" },
  });
}
