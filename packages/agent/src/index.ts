export { EXIT, type ExitCode } from './exit-codes.js';
export { formatTable } from './_table.js';
export { AGENT_VERSION } from './version.js';
