// The abuse scenario corpus (checks/scenarios/*.json): each scenario stages abuse or a benign look-alike on
// this machine as root (loopback sockets only), runs the abuse checks through the built agent, asserts which
// kinds are flagged and with what evidence, and removes what it staged, also when it fails. The detection
// table in checks/README.md is this run's output: GATHER_UPDATE_TABLE=1 rewrites it, otherwise it must match.
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildBundle, generateSigningKeyPair } from '@gather/checks-bundler';
import { agent, cleanEnv, ndjson, tempDir } from './_helpers.js';
import { Stage, sweep, sweepStale, type Scenario } from './_stage.js';

const CHECKS = resolve(dirname(fileURLToPath(import.meta.url)), '../../../checks');
const SCENARIOS = join(CHECKS, 'scenarios');
const README = join(CHECKS, 'README.md');
const KINDS = ['mining', 'hidden', 'ddos', 'scan', 'brute', 'games', 'signatures'] as const;
// Not a prefix of anything else: the stale-leftover sweep below removes what matches it.
const PREFIX_BASE = 'gather-scenario-';
const PREFIX = `${PREFIX_BASE}${process.pid}`;

/**
 * Shortened thresholds, set the way an operator tunes them (GATHER_CHECK_<NAME> in the agent's environment,
 * or `checkSettings` in its file): a CPU hog after 3 s (not 10 min) at >= 5 % of a core (the test machine
 * is shared), scanning from 15 half-open connections.
 */
const TUNING = { GATHER_CHECK_CPU_MIN_SEC: '3', GATHER_CHECK_CPU_MIN_PCT: '5', GATHER_CHECK_SYN_SENT_MIN: '15' };

const scenarios: Scenario[] = readdirSync(SCENARIOS)
  .filter((f) => f.endsWith('.json'))
  .sort()
  .map((f) => ({ id: f.replace(/\.json$/, ''), ...(JSON.parse(readFileSync(join(SCENARIOS, f), 'utf8')) as Omit<Scenario, 'id'>) }));

interface Observed {
  flagged: string[];
  evidence: string[];
}
const observed = new Map<string, Observed>();
let bundleDir: string;
let bundle: string;
let publicKey: string;

function kernelThreadPids(): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1] === '2') pids.push(Number(entry));
    } catch {
      // gone
    }
  }
  return pids;
}

/** Runs the abuse category through the agent; returns every kind's evidence lines. */
async function runAbuseChecks(stage: Stage): Promise<Map<string, { detected: boolean; evidence: string[] }>> {
  const outDir = tempDir(`${PREFIX}-out-`);
  const out = join(outDir, 'results.ndjson');
  // HOMES points the home-dir walks at the scenario's home (the test machine's /root is large and not under test)
  const env = cleanEnv({ ...TUNING, GATHER_CHECK_HOMES: stage.home, PATH: `${stage.binDir}:${process.env.PATH ?? '/usr/bin:/bin'}` });
  const result = await agent(
    ['run', '--bundle', bundle, '--public-key', publicKey, '--category', 'abuse', '--exporter', 'file', '--out', out],
    { env },
  );
  if (!existsSync(out))
    throw new Error(`gather-agent run wrote no results (exit ${result.code}, signal ${result.signal}):\n${result.stderr}`);
  const docs = ndjson(readFileSync(out, 'utf8'));
  rmSync(outDir, { recursive: true, force: true });
  expect(
    docs.filter((d) => d.kind === 'error'),
    result.stderr,
  ).toEqual([]);
  const byName = new Map(docs.filter((d) => d.kind !== 'run').map((d) => [d.name as string, d.value]));
  const kinds = new Map<string, { detected: boolean; evidence: string[] }>();
  for (const kind of KINDS) {
    kinds.set(kind, {
      detected: byName.get(`abuse.${kind}.detected`) === true,
      evidence: (byName.get(`abuse.${kind}.evidence`) as string[] | undefined) ?? [],
    });
  }
  return kinds;
}

/** Evidence lines are about this scenario when they name what it staged: its prefix or one of its pids. */
function aboutStage(line: string, stage: Stage, pids: number[]): boolean {
  if (line.includes(stage.name)) return true;
  return pids.some((pid) => new RegExp(`\\bpid ${pid}\\b`).test(line));
}

/** Evidence as the table shows it: nothing that changes from run to run (pids, CPU figures, the prefix). */
function normalize(line: string, stage: Stage): string {
  return line
    .replaceAll(stage.home, '~')
    .replaceAll(stage.name, '@')
    .replace(/\bpid \d+/g, 'pid N')
    .replace(/\d+ % CPU/g, 'N % CPU')
    .replace(/for \d+ (s|min|h|d)\b/g, 'for T')
    .replace(/\d+ half-open/g, 'N half-open')
    .replace(/\|/g, '\\|');
}

beforeAll(async () => {
  expect(process.getuid?.(), 'the scenario corpus stages processes and files as root: run it as root').toBe(0);
  sweepStale(PREFIX_BASE);
  const keys = generateSigningKeyPair();
  const built = await buildBundle({ checksDir: CHECKS, privateKeyPem: keys.privateKeyPem });
  bundleDir = tempDir(`${PREFIX}-bundle-`);
  bundle = join(bundleDir, 'check.tar');
  publicKey = join(bundleDir, 'key.pub.pem');
  writeFileSync(bundle, built.bytes);
  writeFileSync(publicKey, keys.publicKeyPem);
}, 60_000);

afterAll(() => {
  sweep(PREFIX);
  if (bundleDir) rmSync(bundleDir, { recursive: true, force: true });
});

describe('abuse scenario corpus (checks/scenarios)', () => {
  it('has at least 20 abuse and 8 benign scenarios', () => {
    expect(scenarios.filter((s) => s.class === 'abuse').length).toBeGreaterThanOrEqual(20);
    expect(scenarios.filter((s) => s.class === 'benign').length).toBeGreaterThanOrEqual(8);
  });

  for (const [index, scenario] of scenarios.entries()) {
    it(`${scenario.class}: ${scenario.id} - ${scenario.title}`, async () => {
      const stage = new Stage(PREFIX, scenario, index);
      try {
        await stage.up();
        const pids = [...stage.pids(), ...(scenario.id.includes('kernel-threads') ? kernelThreadPids() : [])];
        const kinds = await runAbuseChecks(stage);
        const flagged: string[] = [];
        const evidence: string[] = [];
        for (const [kind, { detected, evidence: lines }] of kinds) {
          const mine = lines.filter((line) => aboutStage(line, stage, pids));
          if (mine.length === 0) continue;
          expect(detected, `abuse.${kind}.detected with evidence ${JSON.stringify(mine)}`).toBe(true);
          flagged.push(kind);
          evidence.push(...mine.map((line) => `${kind}: ${normalize(line, stage)}`));
        }
        observed.set(scenario.id, { flagged, evidence: evidence.sort() });
        expect(flagged.sort(), JSON.stringify(evidence, null, 1)).toEqual([...scenario.expect].sort());
        for (const needle of scenario.evidence ?? []) expect(evidence.join('\n')).toContain(needle);
      } finally {
        await stage.down();
      }
    }, 120_000);
  }

  it('the detection table in checks/README.md is what this run observed', () => {
    expect(observed.size, 'every scenario must have run').toBe(scenarios.length);
    const rows = scenarios.map((s) => {
      const o = observed.get(s.id)!;
      const expected = s.expect.length ? s.expect.join(', ') : 'nothing';
      const seen = o.flagged.length ? o.flagged.join(', ') : 'nothing';
      return `| ${s.id} | ${s.class} | ${s.title.replace(/\|/g, '\\|')} | ${expected} | ${seen} | ${o.evidence.join('<br>') || '—'} |`;
    });
    const table = [
      '| scenario | class | what is staged | expected | observed | evidence (normalized: `~` home, `@` unique name, N/T varying numbers) |',
      '| --- | --- | --- | --- | --- | --- |',
      ...rows,
    ].join('\n');
    const text = readFileSync(README, 'utf8');
    const start = '<!-- detection-table:start -->\n';
    const end = '\n<!-- detection-table:end -->';
    const from = text.indexOf(start);
    const to = text.indexOf(end);
    expect(from, 'checks/README.md needs the detection-table markers').toBeGreaterThan(-1);
    if (process.env.GATHER_UPDATE_TABLE === '1') {
      writeFileSync(README, text.slice(0, from + start.length) + table + text.slice(to));
    } else {
      expect(text.slice(from + start.length, to), 'run with GATHER_UPDATE_TABLE=1 to regenerate the table').toBe(table);
    }
  });
});
