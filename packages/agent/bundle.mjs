#!/usr/bin/env node
// Part of the package's build (after tsc): what the bin runs, bundled by esbuild (minified) into one file,
// dist/bundle/gather-agent.js (the CLI with the agent and @gather/core). A run loads a handful of modules
// instead of ~35: less start-up time and peak RSS (README "Benchmarks": tools/bench/startup, tools/bench/rss).
// The adapters stay outside: the agent is thin, and loads @gather/fetcher-s3 / @gather/exporter-es from where
// the user installed them, when the configuration selects them (src/adapters.ts). Their copy of
// @gather/core may differ from the bundled one; gather errors are recognised by their Symbol.for marker, not
// by class, so that is fine. dist/index.js (the library) and dist/cli.js stay as tsc writes them.
import { readFileSync, realpathSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { builtInsWithoutFacade } from './esbuild-built-ins.mjs';

const here = dirname(fileURLToPath(import.meta.url));
// esbuild comes with the bundler package (a devDependency here); the agent itself needs nothing new.
const esbuild = createRequire(join(realpathSync(join(here, 'node_modules/@gather/checks-bundler')), 'package.json'))('esbuild');

await esbuild.build({
  absWorkingDir: here,
  entryPoints: { 'gather-agent': 'dist/cli.js' },
  outdir: join(here, 'dist/bundle'),
  bundle: true,
  external: ['@gather/fetcher-s3', '@gather/exporter-es'],
  platform: 'node',
  format: 'esm',
  target: 'node22',
  minify: true,
  legalComments: 'eof',
  logLevel: 'warning',
  // Bundled CommonJS (pino, the SDKs) requires Node's built-in modules.
  banner: { js: "import { createRequire as __gatherRequire } from 'node:module'; const require = __gatherRequire(import.meta.url);" },
  plugins: [
    builtInsWithoutFacade,
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
