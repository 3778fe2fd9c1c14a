import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { buildBundle, generateSigningKeyPair } from '@gather/checks-bundler';
import { resultProblem } from '@gather/core';
import { agent, ndjson, tempDir } from './_helpers.js';

const CHECKS = resolve(dirname(fileURLToPath(import.meta.url)), '../../../checks');

async function bundleOf(checksDir: string) {
  const keys = generateSigningKeyPair();
  const built = await buildBundle({ checksDir, privateKeyPem: keys.privateKeyPem });
  const dir = tempDir();
  writeFileSync(join(dir, 'check.tar'), built.bytes);
  writeFileSync(join(dir, 'key.pub.pem'), keys.publicKeyPem);
  return { bundle: join(dir, 'check.tar'), publicKey: join(dir, 'key.pub.pem'), manifest: built.manifest };
}

describe('the checks in checks/', () => {
  it('all run on this machine through the agent and print only valid results', async () => {
    const { bundle, publicKey, manifest } = await bundleOf(CHECKS);
    const result = await agent(['run', '--bundle', bundle, '--public-key', publicKey]);
    const all = ndjson(result.stdout);
    expect(all.at(-1)).toMatchObject({ kind: 'run', outcome: 'ok' });
    const docs = all.filter((d) => d.kind !== 'run');
    expect(docs.filter((d) => d.kind === 'error')).toEqual([]);
    expect(result.code).toBe(0);
    for (const doc of docs) expect(resultProblem(doc)).toBeUndefined();
    const checksWithResults = new Set(docs.map((d) => d.check));
    expect([...checksWithResults].sort()).toEqual([...manifest.checks.abuse, ...manifest.checks.analytics].sort());
  }, 180_000);
});

describe('compatibility with the original gather', () => {
  it('runs its checks unchanged: no shebang, its helpers and constants, backticks, exit after a hit', async () => {
    const dir = tempDir('gather-compat-');
    mkdirSync(join(dir, 'abuse'));
    mkdirSync(join(dir, 'analytics'));
    copyFileSync(join(CHECKS, 'common'), join(dir, 'common'));
    const scripts: Record<string, string> = {
      'analytics/run-aaa': 'installed "bash installed" bash\n',
      'analytics/run-aab': 'output "zshrc line count" $NUMBER `number_of_lines ~/.zshrc-that-does-not-exist`\n',
      'analytics/run-aac': "COUNT=`grep -c ':/root:' /etc/passwd | tr -d ' '`\noutput \"root count\" $NUMBER $COUNT\n",
      'abuse/run-aad': [
        'function found() {',
        '  COUNT=`echo "$1" | grep -c "marker" 2> /dev/null`',
        '  if [ $COUNT -gt 0 ]',
        '  then',
        '    output "$2" $BOOLEAN 1',
        '    exit',
        '  fi',
        '}',
        "found 'nothing here' 'abuse: nothing'",
        "found 'the marker' 'abuse: marker found'",
        "found 'marker again' 'abuse: unreachable'",
        '',
      ].join('\n'),
    };
    for (const [path, text] of Object.entries(scripts)) writeFileSync(join(dir, path), text);
    const { bundle, publicKey } = await bundleOf(dir);
    const result = await agent(['run', '--bundle', bundle, '--public-key', publicKey]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const values = Object.fromEntries(
      ndjson(result.stdout)
        .filter((d) => d.kind === 'result')
        .map((d) => [d.name, [d.type, d.value]]),
    );
    expect(values).toEqual({
      'bash installed': ['boolean', true],
      'zshrc line count': ['number', 0],
      'root count': ['number', 1],
      'abuse: marker found': ['boolean', true],
    });
  });
});
