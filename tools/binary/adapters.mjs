// The S3 fetcher and the Elasticsearch exporter of the single executable, registered for
// packages/agent/src/adapters.ts. Their code (the AWS SDK, the Elasticsearch client: ~90 % of the bytes) is
// a separate CommonJS bundle stored as a SEA asset and compiled only when the configuration selects an
// adapter, so a local bundle written to NDJSON neither parses nor evaluates it (the npm install's laziness).
// The asset gets the executable's own @gather/core, so errors and classes are shared with the agent.
import { createRequire } from 'node:module';
import vm from 'node:vm';
import * as core from '../../packages/core/dist/index.js';

const builtin = createRequire(process.execPath);
let adapters;

function loadAdapters() {
  if (!adapters) {
    const code = builtin('node:sea').getAsset('adapters.cjs', 'utf8');
    const module = { exports: {} };
    const require = (id) => (id === '@gather/core' ? core : builtin(id));
    vm.compileFunction(code, ['module', 'exports', 'require'], { filename: 'gather-agent:adapters.cjs' })(module, module.exports, require);
    adapters = module.exports;
  }
  return adapters;
}

globalThis[Symbol.for('gather.bundledAdapters')] = {
  '@gather/fetcher-s3': async () => loadAdapters().s3,
  '@gather/exporter-es': async () => loadAdapters().es,
};
