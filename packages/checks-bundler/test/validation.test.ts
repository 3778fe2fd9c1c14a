import { execFileSync } from 'node:child_process';
import { mkdir, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ChecksInvalidError } from '@gather/core';
import { collectChecksWith } from '../src/collect.js';
import { collectChecks, writeBundle } from '../src/index.js';
import { FIXTURE, FIXTURE_PAYLOAD, KEYS, fixtureChecks, tempDir, writeTree } from './_helpers.js';

async function problemsOf(promise: Promise<unknown>): Promise<{ error: ChecksInvalidError; problems: string[] }> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ChecksInvalidError);
  const checksError = error as ChecksInvalidError;
  expect(checksError.code).toBe('GATHER_CHECKS_INVALID');
  expect(checksError.message).toMatch(/^\[gather\] \[checks-bundler\] The checks directory .* has \d+ problems?:/);
  // The message itself lists every problem, so whoever prints only the message sees them all.
  for (const problem of checksError.problems) expect(checksError.message).toContain(problem);
  return { error: checksError, problems: checksError.problems };
}

function expectProblems(problems: string[], expected: RegExp[]): void {
  for (const pattern of expected) {
    expect(
      problems.filter((p) => pattern.test(p)),
      `exactly one problem matching ${pattern} in:\n${problems.join('\n')}`,
    ).toHaveLength(1);
  }
  expect(problems).toHaveLength(expected.length);
}

const OK = '#!/bin/bash\necho ok\n';

describe('collectChecks', () => {
  it('returns the prelude and the checks sorted by category then id, ignoring non run- files', async () => {
    const collected = await collectChecks(await fixtureChecks());
    expect(collected.prelude).toBe(FIXTURE.common);
    expect(collected.checks).toEqual(FIXTURE_PAYLOAD.checks);
  });

  it('reports every problem at once in one ChecksInvalidError', async () => {
    const root = await tempDir();
    const outside = join(root, 'secret.sh');
    await writeFile(outside, OK);
    const checksDir = await writeTree(join(root, 'checks'), {
      // no common
      'abuse/run-ab': OK,
      'abuse/run-ABC': OK,
      'abuse/run-xyz.sh': OK,
      'abuse/run-dup': OK,
      'analytics/run-dup': OK,
      'abuse/run-shx': '#!/bin/sh\necho hi\n',
      'abuse/run-emp': '',
      'abuse/run-nul': '#!/bin/bash\necho "a\0b"\n',
      'abuse/run-utf': Buffer.concat([Buffer.from('#!/bin/bash\necho '), Buffer.from([0xc3, 0x28, 0x0a])]),
      'analytics/run-crl': '#!/bin/bash\r\necho hi\r\n',
      'analytics/run-tmo': '#!/bin/bash\n# gather: timeout=0\necho hi\n',
      'analytics/run-big': '#!/bin/bash\n# gather: timeout=3601\necho hi\n',
      'analytics/notes.md': 'ignored\n',
    });
    await mkdir(join(checksDir, 'analytics/run-dir'));
    await symlink(outside, join(checksDir, 'analytics/run-lnk'));

    const { problems } = await problemsOf(collectChecks(checksDir));
    expectProblems(problems, [
      /^common: is missing; create checks\/common/,
      /^abuse\/run-ab: the check id "ab" must be exactly 3 lowercase letters/,
      /^abuse\/run-ABC: the check id "ABC" must be exactly 3 lowercase letters/,
      /^abuse\/run-xyz\.sh: the check id "xyz\.sh" must be exactly 3 lowercase letters/,
      /^analytics\/run-dup: duplicate check id "dup" \(also abuse\/run-dup\); ids are global/,
      /^abuse\/run-shx: checks run with bash; the shebang must be .*found "#!\/bin\/sh"/,
      /^abuse\/run-emp: is empty/,
      /^abuse\/run-nul: contains NUL bytes/,
      /^abuse\/run-utf: is not valid UTF-8/,
      /^analytics\/run-crl: has Windows \(CRLF\) line endings/,
      /^analytics\/run-tmo:2: timeout must be a whole number of seconds from 1 to 3600, found "0"/,
      /^analytics\/run-big:2: timeout must be a whole number of seconds from 1 to 3600, found "3601"/,
      /^analytics\/run-dir: is a directory; it must be a regular file/,
      /^analytics\/run-lnk: resolves to .*secret\.sh, outside the checks directory/,
    ]);
  });

  it('reports a missing common and missing category directories together', async () => {
    const checksDir = await writeTree(join(await tempDir(), 'checks'), { 'README.md': 'nothing here\n' });
    const { problems } = await problemsOf(collectChecks(checksDir));
    expectProblems(problems, [/^common: is missing/, /^neither abuse\/ nor analytics\/ exists; put checks in checks\/abuse\/run-xyz/]);
  });

  it('reports a checks directory that does not exist', async () => {
    const { problems } = await problemsOf(collectChecks(join(await tempDir(), 'nope')));
    expectProblems(problems, [/nope: is not a readable directory \(ENOENT\); pass the checks directory with --checks/]);
  });

  it('reports category directories without any run- file', async () => {
    const checksDir = await writeTree(join(await tempDir(), 'checks'), { common: '', 'abuse/README.md': 'x\n' });
    const { problems } = await problemsOf(collectChecks(checksDir));
    expectProblems(problems, [/^no check found: add at least one script named run-xyz/]);
  });

  it('accepts a single category directory and an empty common', async () => {
    const checksDir = await writeTree(join(await tempDir(), 'checks'), { common: '', 'analytics/run-abc': OK });
    const collected = await collectChecks(checksDir);
    expect(collected.prelude).toBe('');
    expect(collected.checks).toEqual([{ id: 'abc', category: 'analytics', script: OK }]);
  });

  it('reports an unreadable file (EACCES) with its path', async () => {
    // Tests run as root, where chmod 000 does not stop reads: inject the error instead.
    const checksDir = await fixtureChecks();
    const readFileEacces = async (path: string): Promise<Uint8Array> => {
      if (path.endsWith('run-ssh') || path.endsWith('common')) {
        throw Object.assign(new Error(`EACCES: permission denied, open '${path}'`), { code: 'EACCES' });
      }
      return readFile(path);
    };
    const { problems } = await problemsOf(collectChecksWith(checksDir, { readFile: readFileEacces }));
    expectProblems(problems, [/^common: cannot be read \(EACCES\); fix its permissions/, /^abuse\/run-ssh: cannot be read \(EACCES\)/]);
  });

  it('refuses a category directory that is a symlink to outside checks/, and a dangling symlink', async () => {
    const root = await tempDir();
    await writeTree(join(root, 'elsewhere'), { 'run-abc': OK });
    const checksDir = await writeTree(join(root, 'checks'), { common: '', 'abuse/run-xyz': OK });
    await symlink(join(root, 'elsewhere'), join(checksDir, 'analytics'));
    await symlink(join(root, 'missing-target'), join(checksDir, 'abuse/run-dng'));
    const { problems } = await problemsOf(collectChecks(checksDir));
    expectProblems(problems, [
      /^analytics\/run-abc: resolves to .*elsewhere\/run-abc, outside the checks directory/,
      /^abuse\/run-dng: cannot be read \(ENOENT\)/,
    ]);
  });

  it('accepts a symlink that stays inside checks/', async () => {
    const checksDir = await writeTree(join(await tempDir(), 'checks'), { common: '', 'abuse/run-xyz': OK });
    await mkdir(join(checksDir, 'analytics'));
    await symlink('../abuse/run-xyz', join(checksDir, 'analytics/run-abc'));
    const collected = await collectChecks(checksDir);
    expect(collected.checks.map((c) => `${c.category}/${c.id}`)).toEqual(['abuse/xyz', 'analytics/abc']);
  });

  it('refuses a FIFO named run-xyz without blocking on it', async () => {
    const checksDir = await writeTree(join(await tempDir(), 'checks'), { common: '', 'abuse/run-xyz': OK });
    execFileSync('mkfifo', [join(checksDir, 'abuse/run-fif')]);
    const { problems } = await problemsOf(collectChecks(checksDir));
    expectProblems(problems, [/^abuse\/run-fif: is a FIFO; it must be a regular file/]);
  });

  it.each([
    ['#!/usr/bin/env bash', true],
    ['#!/bin/bash', true],
    ['#!/usr/bin/bash', true],
    ['#!/bin/bash -eu', true],
    ['#! /usr/bin/env bash', true],
    ['#!/bin/sh', false],
    ['#!/usr/bin/env python3', false],
    ['#!/bin/bashful', false],
    ['# no shebang: bash, like checks of the original gather', true],
    ['echo "no shebang at all"', true],
  ])('shebang %j accepted: %s', async (shebang, accepted) => {
    const checksDir = await writeTree(join(await tempDir(), 'checks'), { common: '', 'abuse/run-abc': `${shebang}\necho ok\n` });
    const result = collectChecks(checksDir);
    if (accepted) {
      expect((await result).checks).toHaveLength(1);
    } else {
      const { problems } = await problemsOf(result);
      expect(problems.some((p) => p.includes('checks run with bash; the shebang must be'))).toBe(true);
    }
  });

  it('reads "# gather: timeout=N" only in the first 10 lines, and flags misplaced, duplicate and unknown directives', async () => {
    const pad = (n: number) => '# filler\n'.repeat(n);
    const checksDir = await writeTree(join(await tempDir(), 'checks'), {
      common: '',
      'abuse/run-ten': `#!/bin/bash\n${pad(8)}# gather: timeout=600\necho\n`,
      'abuse/run-spc': '#!/bin/bash\n#  gather:  timeout = 7 \necho\n',
    });
    const ok = await collectChecks(checksDir);
    expect(ok.checks.map((c) => [c.id, c.timeoutSec])).toEqual([
      ['spc', 7],
      ['ten', 600],
    ]);

    await writeTree(checksDir, {
      'abuse/run-elv': `#!/bin/bash\n${pad(9)}# gather: timeout=600\necho\n`,
      'abuse/run-two': '#!/bin/bash\n# gather: timeout=5\n# gather: timeout=6\n',
      'abuse/run-unk': '#!/bin/bash\n# gather: timout=5\n',
      'abuse/run-frc': '#!/bin/bash\n# gather: timeout=1.5\n',
    });
    const { problems } = await problemsOf(collectChecks(checksDir));
    expectProblems(problems, [
      /^abuse\/run-elv:11: "# gather: timeout=" is ignored after line 10; move it to the top/,
      /^abuse\/run-two:3: "# gather: timeout=" appears twice/,
      /^abuse\/run-unk:2: unknown directive "# gather: timout=\.\.\."/,
      /^abuse\/run-frc:2: timeout must be a whole number of seconds from 1 to 3600, found "1\.5"/,
    ]);
  });
});

describe('writeBundle with invalid checks', () => {
  it('throws the problems and leaves neither the output nor a temp file, keeping an existing bundle intact', async () => {
    const checksDir = await writeTree(join(await tempDir(), 'checks'), { 'abuse/run-x': OK });
    const outDir = await tempDir();
    const fresh = join(outDir, 'fresh.tar');
    const { problems } = await problemsOf(writeBundle({ checksDir, privateKeyPem: KEYS.privateKeyPem, out: fresh }));
    expect(problems).toHaveLength(2);
    expect(await readdir(outDir)).toEqual([]);

    const existing = join(outDir, 'check.tar');
    await writeFile(existing, 'previous bundle');
    await problemsOf(writeBundle({ checksDir, privateKeyPem: KEYS.privateKeyPem, out: existing }));
    expect(await readFile(existing, 'utf8')).toBe('previous bundle');
    expect(await readdir(outDir)).toEqual(['check.tar']);
  });

  it('the real-looking fixture still builds after all this (sanity)', async () => {
    const out = join(await tempDir(), 'ok.tar');
    await writeBundle({ checksDir: await fixtureChecks(), privateKeyPem: KEYS.privateKeyPem, out, created: '2024-01-01T00:00:00Z' });
    expect((await readFile(out)).length).toBeGreaterThan(1024);
  });
});
