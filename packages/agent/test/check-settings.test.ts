// Check settings: how an operator tunes check thresholds (file key `checkSettings`, GATHER_CHECK_<NAME>),
// and that they reach the checks as GATHER_<NAME> and nothing else does.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { generateSigningKeyPair } from '@gather/checks-bundler';
import { checkEnvironment, ConfigError } from '@gather/core';
import { loadConfig } from '../src/config.js';
import { agent, cleanEnv, makeBundleFile, ndjson, tempDir } from './_helpers.js';

const dir = tempDir('gather-settings-');
const publicKey = join(dir, 'key.pub.pem');
writeFileSync(publicKey, generateSigningKeyPair().publicKeyPem);

function configFile(content: unknown): string {
  const path = join(tempDir('gather-settings-'), 'agent.json');
  writeFileSync(path, JSON.stringify({ bundle: '/nonexistent/check.tar', publicKey, ...(content as object) }));
  return path;
}

describe('checkSettings', () => {
  it('come from the file, then GATHER_CHECK_<NAME> variables over them; numbers and booleans become strings', () => {
    const config = loadConfig({
      configFile: configFile({ checkSettings: { CPU_MIN_SEC: 600, CPU_MIN_PCT: '90', STRICT: true } }),
      env: { GATHER_CHECK_CPU_MIN_SEC: '30', GATHER_CHECK_HOMES: '/data/home/a:/data/home/b' },
      uid: 0,
    });
    expect(config.checkSettings).toEqual({ CPU_MIN_SEC: '30', CPU_MIN_PCT: '90', STRICT: 'true', HOMES: '/data/home/a:/data/home/b' });
  });

  it('default to none', () => {
    expect(loadConfig({ configFile: configFile({}), env: {}, uid: 0 }).checkSettings).toEqual({});
  });

  it("reject bad names (and the runner's own CATEGORY / CHECK / RUN_DIR), multi-line values and a non-object, each with the fix", () => {
    let problems: string[] = [];
    try {
      loadConfig({
        configFile: configFile({ checkSettings: { 'cpu-min': 1, CATEGORY: 'x', NOTE: 'a\nb' } }),
        env: { GATHER_CHECK_CHECK: 'x', GATHER_CHECK_RUN_DIR: '/tmp/elsewhere' },
        uid: 0,
      });
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      problems = (error as ConfigError).problems;
    }
    expect(problems).toEqual([
      expect.stringMatching(/^checkSettings\.cpu-min .*upper case letters, digits and _/),
      expect.stringMatching(/^checkSettings\.CATEGORY .*not CATEGORY, CHECK or RUN_DIR/),
      expect.stringMatching(/^checkSettings\.NOTE .*single-line/),
      expect.stringMatching(/GATHER_CHECK_CHECK.*not CATEGORY, CHECK or RUN_DIR/),
      // The run's shared work dir is the agent's to set: a setting must not point checks elsewhere.
      expect.stringMatching(/GATHER_CHECK_RUN_DIR.*not CATEGORY, CHECK or RUN_DIR/),
    ]);
    expect(() => loadConfig({ configFile: configFile({ checkSettings: [1] }), env: {}, uid: 0 })).toThrow(
      /checkSettings: must be an object/,
    );
  });

  it("reach the check as GATHER_<NAME>; the scrubbed environment still passes nothing else of the agent's", () => {
    const env = checkEnvironment({ PATH: '/bin', AWS_SECRET_ACCESS_KEY: 's', GATHER_CHECK_X: '1' }, 'abuse', 'abc', {
      CPU_MIN_SEC: '3',
      CATEGORY: 'evil',
    });
    expect(env).toEqual({ PATH: '/bin', GATHER_CPU_MIN_SEC: '3', GATHER_CATEGORY: 'abuse', GATHER_CHECK: 'abc' });
  });

  it('are seen by the checks of a real agent run', async () => {
    const fixture = await makeBundleFile({
      'abuse/run-set': 'output setting string "\\"${GATHER_CPU_MIN_SEC:-unset}/${GATHER_CHECK_CPU_MIN_SEC:-unset}/$GATHER_CATEGORY\\""',
    });
    const result = await agent(['run', '--bundle', fixture.bundlePath, '--public-key', fixture.publicKeyPath], {
      env: cleanEnv({ GATHER_CHECK_CPU_MIN_SEC: '7' }),
    });
    expect(result.code, result.stderr).toBe(0);
    expect(ndjson(result.stdout).find((d) => d.name === 'setting')).toMatchObject({ value: '7/unset/abuse' });
  });
});
