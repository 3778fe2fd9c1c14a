// Entry of the single executable (tools/binary/build.mjs): the adapters registered first (static imports
// are evaluated in order), then the agent's CLI, which runs on import.
import './adapters.mjs';
import '../../packages/agent/dist/cli.js';
