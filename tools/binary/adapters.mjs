// The S3 fetcher and the Elasticsearch exporter of the single executable, registered for
// packages/agent/src/adapters.ts. Their code (the AWS SDK, the Elasticsearch client: ~90 % of the bytes) is
// in CommonJS bundles stored as SEA assets, one per adapter (tools/binary/build.mjs), each compiled only
// when the configuration selects it: a local bundle written to NDJSON evaluates neither, a run exporting to
// Elasticsearch not the AWS SDK (the npm install's laziness, and its peak RSS).
// Each asset gets the executable's own @gather/core, so errors and classes are shared with the agent.
import { createRequire } from 'node:module';
import vm from 'node:vm';
import * as core from '../../packages/core/dist/index.js';

const builtin = createRequire(process.execPath);
const loaded = new Map();

function loadAdapter(asset) {
  if (!loaded.has(asset)) {
    // Decoded straight from the executable's mapped bytes (getAsset would copy them first: ~2 MB of peak).
    const code = new TextDecoder().decode(builtin('node:sea').getRawAsset(asset));
    const module = { exports: {} };
    const require = (id) => (id === '@gather/core' ? core : builtin(id));
    vm.compileFunction(code, ['module', 'exports', 'require'], { filename: `gather-agent:${asset}` })(module, module.exports, require);
    loaded.set(asset, module.exports);
  }
  return loaded.get(asset);
}

globalThis[Symbol.for('gather.bundledAdapters')] = {
  '@gather/fetcher-s3': async () => loadAdapter('s3.cjs'),
  '@gather/exporter-es': async () => loadAdapter('es.cjs'),
};
