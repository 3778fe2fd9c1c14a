import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
/** Version of @gather/core, read from its package.json so it never drifts. */
export const CORE_VERSION: string = (require('../package.json') as { version: string }).version;
