export { EXIT, type ExitCode } from './exit-codes.js';
export { formatTable, tableRow, type TableRow } from './_table.js';
export { AGENT_VERSION } from './version.js';
