import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir } from './_helpers.js';

// The helpers of checks/common that let the checks of one run share work (one walk of the home dirs, the
// socket owners) instead of each doing it: run_shared, walk_match, files_sized.
const COMMON = resolve(dirname(fileURLToPath(import.meta.url)), '../../../checks/common');

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});
function dir(prefix: string): string {
  const made = tempDir(prefix);
  dirs.push(made);
  return made;
}

/** Runs `script` after common, like the agent runs a check (scrubbed environment, stdin /dev/null). */
function check(script: string, env: Record<string, string>): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn('bash', ['-c', `source ${COMMON}\n${script}`], {
      env: { PATH: '/usr/bin:/bin', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk) => (out += chunk));
    child.stderr.on('data', (chunk) => (err += chunk));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolvePromise(out) : reject(new Error(`exit ${code}: ${err}`))));
  });
}

describe('checks/common: work shared by the checks of one run', () => {
  it('run_shared does the work once for concurrent checks of a run; the others wait and read it', async () => {
    const runDir = dir('gather-common-run-');
    const log = join(dir('gather-common-log-'), 'calls');
    const script = `work() { echo call >> ${log}; sleep 0.5; echo result; }; run_shared_cat demo work`;
    const outputs = await Promise.all([1, 2, 3].map(() => check(script, { GATHER_RUN_DIR: runDir })));
    expect(outputs).toEqual(['result\n', 'result\n', 'result\n']);
    expect(readFileSync(log, 'utf8')).toBe('call\n');
  });

  it('run_shared uses no run dir that others can write, nor a missing one: each check does the work', async () => {
    const open = dir('gather-common-open-');
    chmodSync(open, 0o777);
    const script = 'work() { echo fresh; }; run_shared demo work || echo none; run_shared_cat demo work';
    expect(await check(script, { GATHER_RUN_DIR: open })).toBe('none\nfresh\n');
    expect(readdirSync(open)).toEqual([]);
    expect(await check(script, {})).toBe('none\nfresh\n');
  });

  it("walk_match finds names as find -iname does, within each root group's depth, with or without a run dir", async () => {
    const home = dir('gather-common-home-');
    const files = ['XMRig', 'a/b/c/xmrig-6.2', 'a/b/c/d/xmrig', 'node_modules/x/XMRIG', 'a/server.jar', 'a/Server.jar', 'a/notes.txt'];
    for (const file of files) {
      mkdirSync(dirname(join(home, file)), { recursive: true });
      writeFileSync(join(home, file), 'x');
    }
    mkdirSync(join(home, 'xmrig-dir'));
    const script = [
      "walk_match -h 4 -- 'xmrig*' | sort",
      'echo --',
      "walk_match -t fd -h 4 -x /node_modules/ -- 'xmrig*' | sort",
      'echo --',
      'walk_match -c -h 4 -- server.jar',
    ].join('\n');
    const expected = [
      ...[`${home}/XMRig`, `${home}/a/b/c/xmrig-6.2`, `${home}/node_modules/x/XMRIG`].sort(),
      '--',
      ...[`${home}/XMRig`, `${home}/a/b/c/xmrig-6.2`, `${home}/xmrig-dir`].sort(),
      '--',
      `${home}/a/server.jar`,
      '',
    ].join('\n');
    const runDir = dir('gather-common-run-');
    expect(await check(script, { GATHER_HOMES: home, GATHER_RUN_DIR: runDir })).toBe(expected);
    expect(readdirSync(runDir)).toContain('shared-walk');
    expect(await check(script, { GATHER_HOMES: home })).toBe(expected);
    // each call walks the machine's drop dirs (/tmp, /opt...) too: slow on a loaded machine, not a timing test
  }, 180_000);

  it('files_sized keeps the regular files passing the size test, many paths per find', () => {
    const home = dir('gather-common-sized-');
    writeFileSync(join(home, 'small'), 'x');
    writeFileSync(join(home, 'big'), Buffer.alloc(300 * 1024));
    const list = [join(home, 'small'), join(home, 'big'), join(home, 'missing'), home].join('\0');
    const out = execFileSync('bash', ['-c', `source ${COMMON}; files_sized -size -256k | tr '\\0' '\\n'`], {
      input: list,
      encoding: 'utf8',
    });
    expect(out).toBe(`${join(home, 'small')}\n`);
  });
});
