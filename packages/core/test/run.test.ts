import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  AbortedError,
  BundleRefusedError,
  ExportError,
  FetchError,
  createFileFetcher,
  createMemoryExporter,
  run,
  runRecorded,
  type BundledCheck,
  type Exporter,
  type RunOptions,
} from '../src/index.js';
import { check, makeBundle, makeKeys, tempDir, type TarEntry } from './_fixtures.js';

const keys = makeKeys();

function processesNamed(marker: string): number[] {
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .filter((entry) => {
      try {
        return readFileSync(`/proc/${entry}/cmdline`, 'utf8').startsWith(marker);
      } catch {
        return false;
      }
    })
    .map(Number);
}

function setup(checks: BundledCheck[], overrides: Partial<RunOptions> & { tamper?: (m: TarEntry[]) => TarEntry[] } = {}) {
  const dir = tempDir();
  const bundlePath = join(dir, 'check.tar');
  writeFileSync(
    bundlePath,
    makeBundle({
      keys,
      checks,
      prelude: 'emit() { printf \'{"name":"%s","type":"number","value":%s}\\n\' "$1" "$2"; }',
      ...(overrides.tamper ? { tamper: overrides.tamper } : {}),
    }),
  );
  const tmpRoot = tempDir('gather-tmproot-');
  const exporter = createMemoryExporter();
  const options: RunOptions = {
    fetcher: createFileFetcher({ path: bundlePath }),
    exporter,
    category: 'all',
    publicKey: keys.publicKeyPem,
    tmpRoot,
    handleProcessSignals: false,
    ...overrides,
  };
  return { options, exporter, tmpRoot, dir };
}

describe('run', () => {
  it('runs the checks of a category and exports enriched results', async () => {
    const { options, exporter, tmpRoot } = setup([check('abc', 'emit cpu.count 4'), check('xyz', 'emit db.count 2', 'analytics')], {
      category: 'abuse',
      username: 'alice',
      instanceId: 'i-123',
      hostId: '0123456789abcdef0123456789abcdef',
      hostname: 'vm-1',
      agentVersion: '9.9.9',
      runId: 'run-1',
      now: () => new Date('2026-02-03T04:05:06.789Z'),
    });
    const summary = await run(options);
    expect(summary).toMatchObject({
      run_id: 'run-1',
      checks_run: 1,
      checks_ok: 1,
      checks_failed: 0,
      results: 1,
      errors: 0,
      export_failed: false,
    });
    expect(summary.export.delivered).toBe(1);
    expect(exporter.results).toEqual([
      {
        kind: 'result',
        '@timestamp': '2026-02-03T04:05:06.789Z',
        run_id: 'run-1',
        category: 'abuse',
        check: 'abc',
        duration_ms: expect.any(Number),
        name: 'cpu.count',
        type: 'number',
        value: 4,
        host: { hostname: 'vm-1', id: '0123456789abcdef0123456789abcdef' },
        user: { name: 'alice' },
        cloud: { instance: { id: 'i-123' } },
        bundle: { version: 'test-1', sha256: expect.stringMatching(/^[0-9a-f]{64}$/) },
        agent: { version: '9.9.9' },
      },
    ]);
    expect(readdirSync(tmpRoot)).toEqual([]);
  });

  it('reports in the summary how checks were contained and counts the processes killed after their check exited', async () => {
    const marker = `gather-run-daemon-${process.pid}-${Date.now()}`;
    const daemon = `setsid -f bash -c 'exec -a ${marker} sleep 1000' </dev/null >/dev/null 2>&1; emit a 1`;
    try {
      const contained = await run(setup([check('abc', daemon), check('def', 'emit b 2')]).options);
      expect(contained.containment).toEqual({ mechanism: 'cgroup', killed_after_exit: 1 });
      expect(processesNamed(marker)).toEqual([]);
      const fallback = await run(setup([check('def', 'emit b 2')], { containment: 'pgroup' }).options);
      expect(fallback.containment).toEqual({ mechanism: 'pgroup', killed_after_exit: 0 });
    } finally {
      for (const pid of processesNamed(marker)) process.kill(pid, 'SIGKILL');
    }
  });

  it('keeps the other results of a check printing a too deep value, and the other checks, whatever a callback does', async () => {
    const deep = `printf '{"name":"deep","type":"array","value":%s%s}\\n' "$(printf '[%.0s' {1..50000})" "$(printf ']%.0s' {1..50000})"`;
    const { options, exporter } = setup([check('abc', `emit a 1; ${deep}; emit b 2`), check('def', 'emit c 3')], {
      concurrency: 1,
      onCheckDone: () => {
        throw new RangeError('Maximum call stack size exceeded');
      },
    });
    const summary = await run(options);
    expect(summary).toMatchObject({ checks_run: 2, checks_ok: 1, checks_failed: 1, results: 3, export_failed: false });
    expect(exporter.results.map((r) => r.name)).toEqual(['a', 'b', 'c']);
    expect(exporter.errors).toEqual([
      expect.objectContaining({ check: 'abc', reason: 'invalid_output', message: expect.stringMatching(/nested deeper than 20 levels/) }),
    ]);
  });

  it('rethrows an unexpected error as it is, not as a fetch failure, after exporting it as run_failed', async () => {
    const dir = tempDir();
    const { options, exporter } = setup([check('abc', 'emit a 1')], {
      // A fetcher that hands back a directory: reading it fails, which is no fetch failure but a bug.
      fetcher: { name: 'broken', fetch: async () => ({ path: dir, unchanged: false, bytesTransferred: 0, source: 'broken' }) },
    });
    const failure = await run(options).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(Error);
    expect(failure).not.toBeInstanceOf(FetchError);
    expect((failure as NodeJS.ErrnoException).code).toBe('EISDIR');
    expect(exporter.errors).toEqual([
      expect.objectContaining({ reason: 'run_failed', message: expect.stringMatching(/^Unexpected error: EISDIR/) }),
    ]);
  });

  it('does not call a full disk a fetch failure: the error is kept as it is, exported as run_failed', async () => {
    const full = Object.assign(new Error("ENOSPC: no space left on device, write '/var/lib/gather/bundle-cache/x.tar'"), {
      code: 'ENOSPC',
      syscall: 'write',
    });
    const { options, exporter, tmpRoot } = setup([check('abc', 'emit a 1')], {
      fetcher: { name: 'disk', fetch: async () => Promise.reject(full) },
    });
    const failure = await run(options).catch((error: unknown) => error);
    expect(failure).toBe(full);
    expect(FetchError.isInstance(failure)).toBe(false);
    expect(exporter.errors).toEqual([
      expect.objectContaining({ reason: 'run_failed', message: expect.stringMatching(/^The host failed the run: ENOSPC/) }),
    ]);
    expect(readdirSync(tmpRoot)).toEqual([]);
  });

  it('returns its record also when the run cannot complete: what was fetched, the bundle, the error record', async () => {
    const { options } = setup([check('abc', 'emit x 1')], {
      tamper: (members) =>
        members.map((m) => (m.name === 'runner.js' ? { ...m, data: String(m.data).replace('emit x 1', 'emit x 2') } : m)),
    });
    const record = await runRecorded(options);
    expect(BundleRefusedError.isInstance(record.error)).toBe(true);
    expect(record.summary).toMatchObject({ checks_run: 0, errors: 1, export_failed: false, export: { delivered: 1 } });
    expect(record.summary.fetch).toMatchObject({ unchanged: false, bytesTransferred: 0, source: expect.stringMatching(/check\.tar$/) });

    const fine = setup([check('abc', 'emit x 1')]);
    const done = await runRecorded(fine.options);
    expect(done.error).toBeUndefined();
    expect(done.summary).toMatchObject({
      checks_run: 1,
      checks_ok: 1,
      results: 1,
      bundle: { version: expect.any(String) },
      fetch: { unchanged: false },
    });
  });

  it('turns every kind of misbehaving check into an error record and keeps going', async () => {
    const { options, exporter } = setup(
      [
        check('aaa', 'emit ok.one 1'),
        check('bbb', 'echo not json'),
        check('ccc', 'exit 4'),
        check('ddd', 'sleep 30', 'abuse', 1),
        check('eee', 'yes x'),
        check('fff', '{ echo \'{"name":"","type":"number","value":1}\'; }'),
        check('ggg', 'echo \'{"name":"n","type":"boolean","value":1}\'; echo \'{"name":"fine","type":"string","value":"x"}\''),
      ],
      { stdoutCapBytes: 4096, timeoutSec: 20 },
    );
    const summary = await run(options);
    expect(summary).toMatchObject({ checks_run: 7, checks_ok: 1, checks_failed: 5, checks_timed_out: 1, results: 2, errors: 6 });
    const byCheck = Object.fromEntries(exporter.errors.map((e) => [e.check, e]));
    expect(byCheck.bbb).toMatchObject({ kind: 'error', reason: 'invalid_output', category: 'abuse', exit_code: 0, stdout: 'not json\n' });
    expect(byCheck.ccc).toMatchObject({ reason: 'no_output', message: 'exited with code 4 and printed no result', exit_code: 4 });
    expect(byCheck.ddd).toMatchObject({ reason: 'timeout', message: 'timed out after 1 s' });
    expect(byCheck.eee).toMatchObject({ reason: 'output_too_large', message: 'stdout exceeded the 4096 bytes cap; the check was stopped' });
    expect(byCheck.fff?.message).toMatch(/"name" must be a non-empty string/);
    expect(byCheck.ggg?.message).toMatch(/type is "boolean" but value is number/);
    expect(exporter.results.map((r) => r.name).sort()).toEqual(['fine', 'ok.one']);
  });

  it('counts a check that prints an empty array as ok with no results', async () => {
    const { options, exporter } = setup([check('abc', 'echo "[]"')]);
    const summary = await run(options);
    expect(summary).toMatchObject({ checks_ok: 1, checks_failed: 0, results: 0, errors: 0 });
    expect(exporter.errors).toEqual([]);
  });

  it('never runs a check from a refused bundle, and exports the refusal', async () => {
    const sentinel = join(tempDir(), 'ran');
    const { options, exporter, tmpRoot } = setup([check('abc', `touch ${sentinel}; emit x 1`)], {
      tamper: (members) =>
        members.map((m) => (m.name === 'runner.js' ? { ...m, data: String(m.data).replace('emit x 1', 'emit x 2') } : m)),
    });
    await expect(run(options)).rejects.toBeInstanceOf(BundleRefusedError);
    expect(existsSync(sentinel)).toBe(false);
    expect(exporter.results).toEqual([]);
    expect(exporter.errors).toMatchObject([{ kind: 'error', reason: 'bundle_refused', message: expect.stringMatching(/hash mismatch/) }]);
    expect(readdirSync(tmpRoot)).toEqual([]);
  });

  it('exports a fetch failure as an error record', async () => {
    const { options, exporter } = setup([check('abc', 'emit x 1')]);
    options.fetcher = createFileFetcher({ path: '/nonexistent/check.tar' });
    await expect(run(options)).rejects.toBeInstanceOf(FetchError);
    expect(exporter.errors).toMatchObject([
      { reason: 'fetch_failed', message: expect.stringMatching(/Bundle not found at \/nonexistent\/check.tar/) },
    ]);
  });

  it('keeps at most `concurrency` checks running at once', async () => {
    const dir = tempDir();
    const script = `touch ${dir}/$GATHER_CHECK; sleep 0.3; emit seen $(ls ${dir} | wc -l); rm ${dir}/$GATHER_CHECK`;
    const { options, exporter } = setup(
      ['aaa', 'bbb', 'ccc', 'ddd', 'eee', 'fff'].map((id) => check(id, script)),
      { concurrency: 2 },
    );
    await run(options);
    const seen = exporter.results.map((r) => r.value as number);
    expect(seen).toHaveLength(6);
    expect(Math.max(...seen)).toBe(2);
  });

  it('gives checks a scrubbed environment: no credentials, not even the agent settings', async () => {
    process.env.AWS_SECRET_ACCESS_KEY = 'aws-secret';
    process.env.GATHER_ES_PASSWORD = 'es-secret';
    process.env.BASH_ENV = '/tmp/evil';
    try {
      const { options, exporter } = setup([
        check('abc', 'echo "{\\"name\\":\\"env\\",\\"type\\":\\"string\\",\\"value\\":\\"$(env | cut -d= -f1 | sort | tr "\\n" " ")\\"}"'),
      ]);
      await run(options);
      const names = String(exporter.results[0]?.value).trim().split(' ');
      expect(names).not.toContain('AWS_SECRET_ACCESS_KEY');
      expect(names).not.toContain('GATHER_ES_PASSWORD');
      expect(names).not.toContain('BASH_ENV');
      expect(names).toEqual(expect.arrayContaining(['PATH', 'GATHER_CATEGORY', 'GATHER_CHECK']));
    } finally {
      delete process.env.AWS_SECRET_ACCESS_KEY;
      delete process.env.GATHER_ES_PASSWORD;
      delete process.env.BASH_ENV;
    }
  });

  it('gives the checks of one run the same private GATHER_RUN_DIR (their working dir), removed with the run', async () => {
    // run_shared in checks/common caches work done once per run there (e.g. one walk of the home dirs).
    const probe = (name: string) =>
      `[ "$GATHER_RUN_DIR" = "$PWD" ] && [ -O "$GATHER_RUN_DIR" ] && [ "$(stat -c %a "$GATHER_RUN_DIR")" = 700 ] && echo x >> "$GATHER_RUN_DIR/shared"; emit ${name} $(wc -l < "$GATHER_RUN_DIR/shared")`;
    const { options, exporter, tmpRoot } = setup([check('aaa', probe('a')), check('bbb', `sleep 0.2; ${probe('b')}`)], { concurrency: 1 });
    await run(options);
    expect(exporter.results.map((r) => [r.name, r.value])).toEqual([
      ['a', 1],
      ['b', 2],
    ]);
    expect(readdirSync(tmpRoot)).toEqual([]);
  });

  it('removes the temp dir and exports what it has when aborted', async () => {
    const controller = new AbortController();
    const { options, exporter, tmpRoot } = setup([check('aaa', 'emit fast 1'), check('bbb', 'sleep 30; emit slow 1')], {
      signal: controller.signal,
      concurrency: 2,
      onCheckDone: () => setTimeout(() => controller.abort(), 50),
    });
    await expect(run(options)).rejects.toBeInstanceOf(AbortedError);
    expect(exporter.results.map((r) => r.name)).toEqual(['fast']);
    expect(exporter.errors.map((e) => e.reason)).toEqual(['killed', 'run_failed']);
    expect(readdirSync(tmpRoot)).toEqual([]);
  });

  it('stops on SIGTERM when it handles process signals', async () => {
    const { options, tmpRoot } = setup([check('aaa', 'sleep 30; emit slow 1')], { handleProcessSignals: true });
    const started = Date.now();
    const running = run(options);
    setTimeout(() => process.emit('SIGTERM'), 300);
    await expect(running).rejects.toBeInstanceOf(AbortedError);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(readdirSync(tmpRoot)).toEqual([]);
  });

  it('reports an exporter failure in the summary instead of losing the run', async () => {
    const failing: Exporter = {
      name: 'broken',
      exportResults: async () => {
        throw new Error('disk full');
      },
      exportErrors: async () => {},
      flush: async () => ({ delivered: 0, spooled: 0, failed: 1 }),
      close: async () => ({ delivered: 0, spooled: 0, failed: 1 }),
    };
    const { options } = setup([check('abc', 'emit x 1')], { exporter: failing });
    const summary = await run(options);
    expect(summary.export_failed).toBe(true);
    expect(summary.export_error).toMatch(/Exporting to broken failed: disk full/);
  });

  it("names a gather error of the exporter once as gather's, keeping its scope", async () => {
    const failing: Exporter = {
      name: 'file',
      exportResults: async () => {
        throw new ExportError('Writing NDJSON failed: ENOSPC', { scope: 'file exporter' });
      },
      exportErrors: async () => {},
      flush: async () => ({ delivered: 0, spooled: 0, failed: 1 }),
      close: async () => ({ delivered: 0, spooled: 0, failed: 1 }),
    };
    const { options } = setup([check('abc', 'emit x 1')], { exporter: failing });
    const summary = await run(options);
    expect(summary.export_error).toBe('[gather] Exporting to file failed: [file exporter] Writing NDJSON failed: ENOSPC');
  });
});
