#!/usr/bin/env node
// The package's bin: a committed file, so `pnpm install` can link it before dist/ is built.
const built = new URL('../dist/cli.js', import.meta.url);
try {
  await import(built.href);
} catch (error) {
  // A clone before `pnpm build` (the published package ships dist/): say so, not a resolver stack trace.
  if (error?.code !== 'ERR_MODULE_NOT_FOUND' || error.url !== built.href) throw error;
  process.stderr.write(
    '[gather] [checks-bundler] gather-bundle is not built yet: run "pnpm build" at the root of the clone, then try again.\n',
  );
  process.exitCode = 1;
}
