#!/usr/bin/env node
// The main job on this machine, with no S3 and no Elasticsearch: build a bundle from checks/ signed with a
// throw-away dev key, verify and run it with the agent, print a table and write NDJSON.
// Usage: pnpm demo [extra "gather-agent run" flags, e.g. pnpm demo --category abuse]
// Everything it makes (key, bundle, the agent's state dir) lives in a temp dir removed at the end, so even
// as root it creates no /var/lib/gather; only the NDJSON file (GATHER_OUT, default ./gather-results.ndjson) stays.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(fileURLToPath(import.meta.url), '../..');
const bundleCli = join(root, 'packages/checks-bundler/dist/cli.js');
const agentCli = join(root, 'packages/agent/dist/cli.js');
const out = resolve(process.env.GATHER_OUT ?? 'gather-results.ndjson');
const work = mkdtempSync(join(tmpdir(), 'gather-demo-'));

function step(label, cli, args) {
  process.stderr.write(`\n$ ${label} ${args.join(' ')}\n`);
  const result = spawnSync(process.execPath, [cli, ...args], { stdio: 'inherit' });
  if (result.error) throw result.error;
  return result.status ?? 1;
}

let status = 1;
try {
  const privateKey = join(work, 'dev-signing-key.pem');
  const publicKey = join(work, 'dev-signing-key.pub.pem');
  const bundle = join(work, 'check.tar');
  if ((status = step('gather-bundle', bundleCli, ['keygen', '--out-private', privateKey, '--out-public', publicKey])) !== 0)
    process.exit(status);
  if ((status = step('gather-bundle', bundleCli, ['build', '--checks', join(root, 'checks'), '--out', bundle, '--key', privateKey])) !== 0)
    process.exit(status);
  const stateDir = join(work, 'state');
  status = step('gather-agent', agentCli, [
    'run',
    '--bundle',
    bundle,
    '--public-key',
    publicKey,
    '--out',
    out,
    '--state-dir',
    stateDir,
    '--table',
    ...process.argv.slice(2),
  ]);
  process.stderr.write(`\nNDJSON results and error records: ${out} (exit code ${status}; see README "Exit codes")\n`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
process.exit(status);
