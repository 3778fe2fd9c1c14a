// The floor under tools/bench/startup: what any Node agent must do to run one signed check, and nothing
// else. Reads the bundle, verifies the ed25519 signature of its manifest, runs the check's script with bash
// (script on stdin) and writes its output line to the out file. No configuration, state, lock, containment,
// runner or export: the cost of Node's own modules for crypto and child processes plus one bash, which a
// real agent cannot go below. Usage: node _floor.mjs <bundle.tar> <public-key.pem> <check script> <out>
import { spawn } from 'node:child_process';
import { createPublicKey, verify } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';

const [bundlePath, publicKeyPath, scriptPath, outPath] = process.argv.slice(2);
const tar = readFileSync(bundlePath);
const members = new Map();
for (let offset = 0; offset + 512 <= tar.length && tar[offset] !== 0; ) {
  const name = tar.toString('latin1', offset, offset + 100).replace(/\0.*$/s, '');
  const size = Number.parseInt(tar.toString('latin1', offset + 124, offset + 136), 8);
  members.set(name, tar.subarray(offset + 512, offset + 512 + size));
  offset += 512 + Math.ceil(size / 512) * 512;
}
const key = createPublicKey(readFileSync(publicKeyPath));
if (!verify(null, members.get('manifest.json'), key, members.get('manifest.sig'))) throw new Error('floor: bad signature');
const bash = spawn('bash', ['-s'], { stdio: ['pipe', 'pipe', 'inherit'] });
let output = '';
bash.stdout.setEncoding('utf8').on('data', (chunk) => {
  output += chunk;
});
bash.stdin.end(readFileSync(scriptPath));
bash.on('close', (code) => {
  if (code !== 0) throw new Error(`floor: bash exited with ${code}`);
  writeFileSync(outPath, output);
});
