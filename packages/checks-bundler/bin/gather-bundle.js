#!/usr/bin/env node
// The package's bin: a committed file, so `pnpm install` can link it before dist/ is built.
import '../dist/cli.js';
