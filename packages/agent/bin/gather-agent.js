#!/usr/bin/env -S node --max-semi-space-size=1 --optimize-for-size
// The package's bin: a committed file, so `pnpm install` can link it before dist/ is built. Its flags keep
// the agent's RSS low on the user's VM (see src/cli.ts).
import '../dist/cli.js';
