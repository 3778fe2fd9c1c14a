import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AGENT_CLI, agent, cleanEnv, makeBundleFile, ndjson, tempDir } from './_helpers.js';
import { processesWith, waitFor } from './_process.js';

describe('gather-agent run', () => {
  it('runs the checks of the bundle and writes results and error records as one NDJSON stream', async () => {
    const fx = await makeBundleFile({
      'abuse/run-abc': 'output proc.count number 7',
      'analytics/run-def': 'echo "not json"',
    });
    const result = await agent([
      'run',
      '--bundle',
      fx.bundlePath,
      '--public-key',
      fx.publicKeyPath,
      '--username',
      'alice',
      '--instance-id',
      'i-42',
      '--host-id',
      'vm-42-id',
    ]);
    expect(result.code).toBe(5);
    const docs = ndjson(result.stdout);
    expect(docs).toHaveLength(3);
    const [ok] = docs.filter((d) => d.kind === 'result');
    expect(ok).toMatchObject({
      check: 'abc',
      category: 'abuse',
      name: 'proc.count',
      type: 'number',
      value: 7,
      host: { id: 'vm-42-id', hostname: expect.any(String) },
      user: { name: 'alice' },
      cloud: { instance: { id: 'i-42' } },
      agent: { version: expect.stringMatching(/^\d+\.\d+\.\d+/) },
      bundle: { version: expect.any(String), sha256: expect.stringMatching(/^[0-9a-f]{64}$/) },
      run_id: expect.any(String),
    });
    expect(docs.find((d) => d.kind === 'error')).toMatchObject({
      check: 'def',
      category: 'analytics',
      reason: 'invalid_output',
      stdout: 'not json\n',
    });
    // The run summary comes last: what ran, where it went, what it cost.
    expect(docs[2]).toMatchObject({
      kind: 'run',
      run_id: ok!.run_id,
      category: 'all',
      outcome: 'checks_failed',
      trigger: 'once',
      checks: { run: 2, ok: 1, failed: 1, timed_out: 0 },
      results: 1,
      errors: 1,
      export: { delivered: 2, spooled: 0, failed: 0 },
      spooled: 0,
      bytes_fetched: 0,
      host: { id: 'vm-42-id' },
      user: { name: 'alice' },
      cloud: { instance: { id: 'i-42' } },
      bundle: ok!.bundle,
    });
    expect(docs[2]!.duration_ms).toBeGreaterThan(0);
    expect(docs[2]!.peak_rss_bytes).toBeGreaterThan(10 * 1024 * 1024);
  });

  it('keeps a run whose check prints a value nested 100,000 levels deep: exit 5, every other result exported', async () => {
    const deep = `python3 -c "print('{\\"name\\":\\"deep\\",\\"type\\":\\"array\\",\\"value\\":' + '['*100000 + ']'*100000 + '}')"`;
    const fx = await makeBundleFile({
      'abuse/run-abc': `output before number 1; ${deep}; output after number 2`,
      'abuse/run-def': 'output other number 3',
    });
    const out = join(tempDir(), 'results.ndjson');
    const result = await agent(['run', '--bundle', fx.bundlePath, '--public-key', fx.publicKeyPath, '--out', out, '--table']);
    expect(result.code).toBe(5);
    const docs = ndjson(readFileSync(out, 'utf8'));
    expect(
      docs
        .filter((d) => d.kind === 'result')
        .map((d) => d.name)
        .sort(),
    ).toEqual(['after', 'before', 'other']);
    expect(docs.find((d) => d.kind === 'error')).toMatchObject({
      check: 'abc',
      reason: 'invalid_output',
      message: expect.stringMatching(/nested deeper than 20 levels/),
    });
    expect(docs.at(-1)).toMatchObject({
      kind: 'run',
      outcome: 'checks_failed',
      checks: { run: 2, ok: 1, failed: 1 },
      results: 3,
      containment: { mechanism: 'cgroup', killed_after_exit: 0 },
    });
    expect(result.stderr).toMatch(/2 checks: 1 ok, 1 failed/);
    // Forced to the fallback, the summary says so.
    const fallback = await agent([
      'run',
      '--bundle',
      fx.bundlePath,
      '--public-key',
      fx.publicKeyPath,
      '--out',
      out,
      '--containment',
      'pgroup',
    ]);
    expect(fallback.code).toBe(5);
    expect(ndjson(readFileSync(out, 'utf8')).at(-1)).toMatchObject({
      kind: 'run',
      containment: { mechanism: 'pgroup', killed_after_exit: 0 },
    });
  });

  it('ends only once a slow reader of its stdout has every line (it exits without waiting for Node to wind down)', async () => {
    // ~1 MB of NDJSON: far more than a pipe holds, so the agent finishes while most of it still waits to be read.
    const fx = await makeBundleFile({ 'abuse/run-abc': 'for i in $(seq 1 3000); do output many.n$i number $i; done' });
    const child = spawn(process.execPath, [AGENT_CLI, 'run', '--bundle', fx.bundlePath, '--public-key', fx.publicKeyPath], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: cleanEnv({ GATHER_STATE_DIR: tempDir('gather-agent-state-') }),
    });
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    child.stdout.pause();
    // Reads nothing until the agent's run is over and its stdout is full.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stdout.resume();
    expect(await exited).toBe(0);
    const results = ndjson(stdout).filter((doc) => doc.kind === 'result');
    expect(results).toHaveLength(3000);
    expect(results.at(-1)).toMatchObject({ name: 'many.n3000', value: 3000 });
    expect(ndjson(stdout).at(-1)).toMatchObject({ kind: 'run', outcome: 'ok' });
  });

  it('runs only the category asked for and exits 0 when every check is fine', async () => {
    const fx = await makeBundleFile({ 'abuse/run-abc': 'output a number 1', 'analytics/run-def': 'exit 1' });
    const out = join(tempDir(), 'results.ndjson');
    const result = await agent(['run', '--bundle', fx.bundlePath, '--public-key', fx.publicKeyPath, '--category', 'abuse', '--out', out]);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe('');
    const docs = ndjson(readFileSync(out, 'utf8'));
    expect(docs.filter((d) => d.kind === 'result').map((d) => d.check)).toEqual(['abc']);
    expect(docs.map((d) => d.kind)).toEqual(['result', 'run']);
    expect(docs[1]).toMatchObject({ category: 'abuse', outcome: 'ok', checks: { run: 1, ok: 1 } });
  });

  it('prints a human table on request: one row per check and the totals', async () => {
    const fx = await makeBundleFile({
      'abuse/run-abc': 'output cpu.count number 4',
      'abuse/run-xyz': 'sleep 5',
      'analytics/run-def': `output shell string '"bash"'`,
    });
    const result = await agent([
      'run',
      '--bundle',
      fx.bundlePath,
      '--public-key',
      fx.publicKeyPath,
      '--out',
      '/dev/null',
      '--table',
      '--timeout',
      '1',
    ]);
    expect(result.code).toBe(5);
    const lines = result.stderr.split('\n');
    expect(lines[0]).toMatch(/^CHECK\s+CATEGORY\s+STATUS\s+DURATION\s+RESULT$/);
    expect(lines.find((l) => l.startsWith('abc'))).toMatch(/abc\s+abuse\s+ok\s+\d+ ms\s+cpu\.count=4/);
    expect(lines.find((l) => l.startsWith('xyz'))).toMatch(/error .*timeout: timed out after 1 s/);
    expect(result.stderr).toMatch(/3 checks: 2 ok, 0 failed, 1 timed out; 2 results, 1 errors/);
  });

  it('never leaves the script text on disk in clear while checks run', async () => {
    // The check greps the agent's private temp dir (the parent of its working dir) for its own text. The
    // needle is assembled at run time, so only a clear copy of the script could match; planting one copy
    // proves the search would see it.
    const tmp = tempDir('gather-agent-tmp-');
    const fx = await makeBundleFile({
      'abuse/run-abc': [
        '# TOP-SECRET-CHECK-BODY',
        'n="TOP-SECRET""-CHECK-BODY"; run_dir=$(dirname "$PWD")',
        'output before number "$(grep -rl -- "$n" "$run_dir" | wc -l)"',
        'echo "$n" > planted',
        'output after number "$(grep -rl -- "$n" "$run_dir" | wc -l)"',
        `output dir string "$(printf '"%s"' "$run_dir")"`,
      ].join('\n'),
    });
    expect(fx.bundle.includes('TOP-SECRET')).toBe(false);
    const result = await agent(['run', '--bundle', fx.bundlePath, '--public-key', fx.publicKeyPath], { env: cleanEnv({ TMPDIR: tmp }) });
    expect(result.code).toBe(0);
    const values = Object.fromEntries(
      ndjson(result.stdout)
        .filter((d) => d.kind === 'result')
        .map((d) => [d.name, d.value]),
    );
    expect(values).toMatchObject({ before: 0, after: 1 });
    expect(String(values.dir).startsWith(tmp)).toBe(true);
    expect(readdirSync(tmp)).toEqual([]);
  });

  it.each([
    [['run'], /Missing --bundle/],
    [['run', '--bundle', 'x'], /Missing --public-key/],
    [['run', '--bundle', 'x', '--public-key', 'y', '--category', 'fun'], /--category must be one of abuse, analytics, all/],
    [['run', '--bundle', 'x', '--public-key', 'y', '--concurrency', '0'], /--concurrency must be a positive integer/],
    [['run', '--nope'], /Unknown option '--nope'/],
    [['frobnicate'], /Unknown command "frobnicate"/],
  ])('usage error %j prints the problem and a pointer to --help, not the whole usage, exit 2', async (args, message) => {
    const result = await agent(args);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(message);
    expect(result.stderr).toMatch(/Run "gather-agent (run )?--help" for the options\.\n$/);
    expect(result.stderr).not.toMatch(/Usage: gather-agent/);
  });

  it('no command is a usage error: the commands on stderr, exit 2', async () => {
    const result = await agent([]);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(/^Usage: gather-agent <command>/);
  });

  it.each([[['--help']], [['run', '--help']], [['verify', '--help']], [['version', '--help']]])('%j prints help, exit 0', async (args) => {
    const result = await agent(args);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^Usage: gather-agent/);
  });

  it('against an unreachable Elasticsearch, a one-off run spools and says the next run sends them (no "retrying in")', async () => {
    const fx = await makeBundleFile({ 'abuse/run-abc': 'output a number 1' });
    const spoolDir = tempDir('gather-agent-spool-');
    const result = await agent([
      'run',
      '--bundle',
      fx.bundlePath,
      '--public-key',
      fx.publicKeyPath,
      '--exporter',
      'elasticsearch',
      '--es-url',
      'http://127.0.0.1:1',
      '--spool-dir',
      spoolDir,
    ]);
    expect(result.code).toBe(7);
    expect(result.stderr).toContain('the next gather-agent run (or the daemon) sends them first');
    expect(result.stderr).not.toMatch(/retrying in/);
    // Once, though the run's closing flush tries Elasticsearch again (it was printed twice).
    expect(result.stderr.match(/is unavailable/g)).toHaveLength(1);
  });

  it('names the public key file it cannot read', async () => {
    const fx = await makeBundleFile({ 'abuse/run-abc': 'output a number 1' });
    const result = await agent(['run', '--bundle', fx.bundlePath, '--public-key', join(fx.dir, 'missing.pem')]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/Cannot read the public key file .*missing\.pem \(ENOENT\)/);
  });

  it('exits 4 when the bundle cannot be fetched', async () => {
    const fx = await makeBundleFile({ 'abuse/run-abc': 'output a number 1' });
    const result = await agent(['run', '--bundle', join(fx.dir, 'nope.tar'), '--public-key', fx.publicKeyPath]);
    expect(result.code).toBe(4);
    expect(result.stderr).toMatch(/Bundle not found at .*nope\.tar/);
    expect(ndjson(result.stdout)).toMatchObject([
      { kind: 'error', reason: 'fetch_failed' },
      { kind: 'run', outcome: 'fetch_failed', message: expect.stringMatching(/Bundle not found/), checks: { run: 0 } },
    ]);
  });

  it('on SIGTERM kills the running checks, removes its temp dir and exits 130', async () => {
    const marker = `gather-agent-sigterm-${process.pid}`;
    const tmp = tempDir('gather-agent-tmp-');
    const fx = await makeBundleFile({ 'abuse/run-abc': `(exec -a ${marker} sleep 300) & wait` });
    let pid = 0;
    const running = agent(['run', '--bundle', fx.bundlePath, '--public-key', fx.publicKeyPath], {
      env: cleanEnv({ TMPDIR: tmp }),
      onSpawn: (p) => (pid = p),
    });
    await waitFor(() => processesWith(marker).length > 0);
    process.kill(pid, 'SIGTERM');
    const result = await running;
    expect(result.code).toBe(130);
    expect(processesWith(marker)).toEqual([]);
    expect(readdirSync(tmp)).toEqual([]);
    expect(ndjson(result.stdout)).toMatchObject([
      { kind: 'error', reason: 'killed', check: 'abc' },
      { kind: 'error', reason: 'run_failed' },
      { kind: 'run', outcome: 'interrupted', checks: { run: 1, failed: 1 } },
    ]);
  });

  it('does not load the S3 or Elasticsearch adapters for a local run', () => {
    const cli = readFileSync(join(__dirname, '../dist/cli.js'), 'utf8');
    expect(cli).not.toMatch(/from ['"]@gather\/(fetcher-s3|exporter-es)['"]|@aws-sdk|@elastic/);
    expect(existsSync(join(__dirname, '../dist/cli.js'))).toBe(true);
  });
});
