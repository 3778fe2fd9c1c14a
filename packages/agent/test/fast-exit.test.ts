import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AGENT_CLI, cleanEnv, tempDir } from './_helpers.js';

// The CLI ends without Node's teardown where Node has node:ffi (src/fast-exit.ts). Whether it did shows in
// process.reallyExit, the internal call that starts the teardown: a preload wraps it to leave a mark.
const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
const nodeHasFfi = major > 26 || (major === 26 && minor >= 1);

function cli(args: string[], env: Record<string, string> = {}) {
  const dir = tempDir('gather-fast-exit-');
  try {
    const mark = join(dir, 'teardown');
    const preload = join(dir, 'mark-teardown.cjs');
    writeFileSync(
      preload,
      `const reallyExit = process.reallyExit;
       process.reallyExit = (code) => { require('node:fs').writeFileSync(${JSON.stringify(mark)}, String(code)); reallyExit(code); };
       process.on('exit', () => process.stdout.write('exit listener ran\\n'));`,
    );
    const result = spawnSync(process.execPath, ['--require', preload, AGENT_CLI, ...args], {
      env: cleanEnv({ GATHER_STATE_DIR: join(dir, 'state'), ...env }),
      encoding: 'utf8',
    });
    return { ...result, tornDown: existsSync(mark), dir };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('the end of the process', () => {
  it(`${nodeHasFfi ? 'skips' : 'keeps'} Node's teardown on this Node, after the exit listeners, with the exit code and every line`, () => {
    const version = cli(['version']);
    expect(version.stdout).toMatch(/^\d+\.\d+\.\d+\nexit listener ran\n$/);
    expect(version.status).toBe(0);
    expect(version.tornDown).toBe(!nodeHasFfi);
    const usage = cli([]);
    expect(usage.status).toBe(2);
    expect(usage.stderr).toContain('Exit codes: 0 ok');
    expect(usage.tornDown).toBe(!nodeHasFfi);
  });

  it('tears down as usual when Node writes coverage then', () => {
    const coverage = tempDir('gather-fast-exit-coverage-');
    try {
      mkdirSync(coverage, { recursive: true });
      const result = cli(['version'], { NODE_V8_COVERAGE: coverage });
      expect(result.status).toBe(0);
      expect(result.tornDown).toBe(true);
      expect(readdirSync(coverage).some((name) => name.endsWith('.json'))).toBe(true);
    } finally {
      rmSync(coverage, { recursive: true, force: true });
    }
  });
});
