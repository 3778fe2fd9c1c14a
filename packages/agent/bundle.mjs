#!/usr/bin/env node
// Part of the package's build (after tsc): what the bin runs, bundled by esbuild (minified) into few files of
// dist/bundle/: gather-agent.js (the CLI with the agent and @gather/core), one module per adapter
// (fetcher-s3.js, exporter-es.js: the S3 fetcher and the Elasticsearch exporter with their SDKs, which the
// bin registers for src/adapters.ts as the single binary registers its own, tools/binary/adapters.mjs), and
// the chunks they share (@gather/core: one instance, so errors and classes are the agent's). A run loads a
// handful of modules instead of ~35 (local bundle), ~75 (S3) or ~500 (Elasticsearch): less start-up time
// and peak RSS (README "Benchmarks": tools/bench/startup, tools/bench/rss). dist/index.js (the library) and
// dist/cli.js stay as tsc writes them.
import { readFileSync, realpathSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
// esbuild comes with the bundler package (a devDependency here); the agent itself needs nothing new.
const esbuild = createRequire(join(realpathSync(join(here, 'node_modules/@gather/checks-bundler')), 'package.json'))('esbuild');

await esbuild.build({
  absWorkingDir: here,
  entryPoints: { 'gather-agent': 'dist/cli.js', 'fetcher-s3': '@gather/fetcher-s3', 'exporter-es': '@gather/exporter-es' },
  outdir: join(here, 'dist/bundle'),
  chunkNames: 'shared-[hash]',
  bundle: true,
  splitting: true,
  platform: 'node',
  format: 'esm',
  target: 'node22',
  minify: true,
  legalComments: 'eof',
  logLevel: 'warning',
  // Bundled CommonJS (pino, the SDKs) requires Node's built-in modules.
  banner: { js: "import { createRequire as __gatherRequire } from 'node:module'; const require = __gatherRequire(import.meta.url);" },
  plugins: [
    {
      name: 'gather-agent-bundle',
      setup(build) {
        // `createRequire(import.meta.url)` in our packages (version.ts, logger.ts) would resolve from
        // dist/bundle at run time; without it, esbuild bundles what they require (package.json, pino).
        build.onLoad({ filter: /[\\/]packages[\\/][^\\/]+[\\/]dist[\\/][^\\/]+\.js$/ }, (args) => {
          const text = readFileSync(args.path, 'utf8');
          return { contents: text.replace(/^const require = createRequire\(import\.meta\.url\);$/m, ''), loader: 'js' };
        });
      },
    },
  ],
});
