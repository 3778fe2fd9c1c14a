// Validates a check's stdout with the agent's own parser (@gather/core), so this tool and the agent can
// never disagree about the output contract (see README.md).
// Usage: node checks/validate.mjs < stdout.txt   -> exit 0 and a summary, or exit 1 and the reason.
import { existsSync, readFileSync } from 'node:fs';

const core = new URL('../packages/core/dist/index.js', import.meta.url);
if (!existsSync(core)) {
  console.log('INVALID: @gather/core is not built; run "pnpm build" first');
  process.exit(2);
}
const { parseCheckOutput } = await import(core.href);
const { results, values, problems } = parseCheckOutput(readFileSync(0, 'utf8'));
if (problems.length > 0 || values === 0) {
  console.log(`INVALID: ${problems.join('; ') || 'no output'}`);
  process.exit(1);
}
console.log(`ok: ${results.length} results`);
