// Checks run as root and can read the agent's environment (/proc/<agent pid>/environ) and its files. Whatever
// a hostile check does with the agent's secrets (prints them as a result value, a result name, an object key,
// an error text or on stderr), they appear in no exported document (NDJSON, the real Elasticsearch) and no
// log line. Secrets from the environment, from an AWS credentials file and from systemd credentials.
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from '@elastic/elasticsearch';
import { afterAll, describe, expect, it } from 'vitest';
import { agent, cleanEnv, makeBundleFile, ndjson, tempDir } from './_helpers.js';

const esUrl = process.env.GATHER_ES_URL;
if (!esUrl)
  throw new Error('GATHER_ES_URL is not set: run through the vitest "integration" project (tools/vitest-services.ts), or export it.');

const id = `${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
const secret = (what: string) => `${what}-${randomBytes(12).toString('hex')}`;
const MARKER = `p9e-secrets-${id}`;

// The hostile check: finds the agent by a marker in its environment (as $PPID, or any process of the host
// when the check runs in its own PID namespace), and leaks every secret it can find in every field it can.
const HOSTILE = `
agent_env() {
  for f in /proc/$PPID/environ /proc/[0-9]*/environ; do
    if tr '\\0' '\\n' < "$f" 2>/dev/null | grep -qx 'P9E_MARKER=${MARKER}'; then tr '\\0' '\\n' < "$f"; return; fi
  done
}
get() { agent_env | sed -n "s/^$1=//p"; }
S1=$(get AWS_SECRET_ACCESS_KEY); S2=$(get AWS_SESSION_TOKEN); S3=$(get GATHER_ES_PASSWORD); S5=$(get GATHER_ES_API_KEY)
CD=$(get CREDENTIALS_DIRECTORY)
S4=$(sed -n 's/^aws_secret_access_key *= *//p' "$CD/aws-credentials" 2>/dev/null)
S6=$(cat "$CD/es-api-key" 2>/dev/null)
output leak.value string "\\"$S1 $S5\\""
output "leak.name.$S2" string '"x"'
output leak.object object "{\\"$S3\\":[\\"$S4\\",{\\"deep\\":\\"$S6\\"}]}"
output leak.found number "$(agent_env | grep -c -E '^(AWS_SECRET_ACCESS_KEY|AWS_SESSION_TOKEN|GATHER_ES_PASSWORD|GATHER_ES_API_KEY)=')"
`;
const ERRING = `${HOSTILE.split('output ')[0]}
echo "stderr: $S1 $S2 $S3 $S4 $S5 $S6" >&2
echo "not json: $S1 $S2 $S3 $S4 $S5 $S6"
exit 3
`;

function credentialsDir(files: Record<string, string>): string {
  const dir = tempDir('gather-credentials-');
  mkdirSync(dir, { recursive: true });
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text, { mode: 0o600 });
  return dir;
}

const es = new Client({ node: esUrl, requestTimeout: 60_000 });
const indices = {
  results: `p9e-secrets-results-${id}`,
  errors: `p9e-secrets-errors-${id}`,
  runs: `p9e-secrets-runs-${id}`,
  latest: `p9e-secrets-latest-${id}`,
  hosts: `p9e-secrets-hosts-${id}`,
};
/** Every index the agent writes: results, errors and runs go to daily indices <index>-YYYY.MM.DD. */
const written = [`${indices.results}-2*`, `${indices.errors}-2*`, `${indices.runs}-2*`, indices.latest, indices.hosts];
afterAll(async () => {
  for (const index of Object.values(indices)) {
    await es.indices.delete({ index: [index, `${index}-2*`], ignore_unavailable: true, allow_no_indices: true }).catch(() => undefined);
    await es.indices.deleteIndexTemplate({ name: `${index}-gather` }).catch(() => undefined);
  }
  await es.close();
});

describe('secrets never leave in results', () => {
  it('NDJSON and logs: secrets from the environment and an AWS credentials file (systemd credential) are scrubbed everywhere', async () => {
    const secrets = { aws: secret('awssecret'), token: secret('session'), password: secret('espass'), credfile: secret('credfile') };
    const creds = credentialsDir({
      'aws-credentials': `[default]\naws_access_key_id = AKIAEXAMPLE\naws_secret_access_key = ${secrets.credfile}\n`,
    });
    const fx = await makeBundleFile({ 'abuse/run-abc': HOSTILE, 'abuse/run-err': ERRING });
    const out = join(fx.dir, 'out.ndjson');
    const result = await agent(
      ['run', '--bundle', fx.bundlePath, '--public-key', fx.publicKeyPath, '--out', out, '--log-level', 'debug', '--table'],
      {
        env: cleanEnv({
          P9E_MARKER: MARKER,
          AWS_SECRET_ACCESS_KEY: secrets.aws,
          AWS_SESSION_TOKEN: secrets.token,
          GATHER_ES_PASSWORD: secrets.password,
          CREDENTIALS_DIRECTORY: creds,
        }),
      },
    );
    expect(result.code, result.stderr).toBe(5);
    const exported = readFileSync(out, 'utf8');
    const docs = ndjson(exported);
    // The check did find the secrets (so the test is not vacuous) ...
    expect(docs.find((d) => d.name === 'leak.found')?.value).toBe(3);
    expect(docs.find((d) => d.name === 'leak.value')?.value).toMatch(/^\[redacted\] $/);
    expect(docs.find((d) => String(d.name).startsWith('leak.name.'))?.name).toBe('leak.name.[redacted]');
    expect(docs.find((d) => d.name === 'leak.object')?.value).toEqual({ '[redacted]': ['[redacted]', { deep: '' }] });
    const error = docs.find((d) => d.kind === 'error' && d.check === 'err')!;
    expect(error).toMatchObject({ reason: 'invalid_output' });
    expect(String(error.stderr)).toMatch(/stderr: (\[redacted\] ){4}/);
    // ... and none of them left: not in a document, not in a log line, not in the table.
    for (const value of Object.values(secrets)) {
      expect(exported).not.toContain(value);
      expect(result.stderr).not.toContain(value);
      expect(result.stdout).not.toContain(value);
    }
    expect(result.stderr).toMatch(/"msg":"run completed/);
  });

  it('Elasticsearch: the API key (environment) and a systemd credential file never reach an index, nor the logs', async () => {
    const secrets = { apiKey: secret('apikey'), credApiKey: secret('credkey'), aws: secret('awssecret') };
    const creds = credentialsDir({ 'es-api-key': `${secrets.credApiKey}\n` });
    const fx = await makeBundleFile({ 'abuse/run-abc': HOSTILE, 'abuse/run-err': ERRING });
    const env = cleanEnv({
      P9E_MARKER: MARKER,
      AWS_SECRET_ACCESS_KEY: secrets.aws,
      CREDENTIALS_DIRECTORY: creds,
      GATHER_EXPORTER: 'elasticsearch',
      GATHER_ES_URL: esUrl,
      GATHER_ES_RESULTS_INDEX: indices.results,
      GATHER_ES_ERRORS_INDEX: indices.errors,
      GATHER_ES_RUNS_INDEX: indices.runs,
      GATHER_ES_LATEST_INDEX: indices.latest,
      GATHER_ES_HOSTS_INDEX: indices.hosts,
      GATHER_SPOOL_DIR: tempDir('gather-spool-'),
      GATHER_LOG_LEVEL: 'debug',
    });
    // First with the key from the systemd credential (no GATHER_ES_API_KEY), then from the environment.
    const viaCredential = await agent(['run', '--bundle', fx.bundlePath, '--public-key', fx.publicKeyPath], { env });
    expect(viaCredential.code, viaCredential.stderr).toBe(5);
    const viaEnv = await agent(['run', '--bundle', fx.bundlePath, '--public-key', fx.publicKeyPath], {
      env: { ...env, GATHER_ES_API_KEY: secrets.apiKey },
    });
    expect(viaEnv.code, viaEnv.stderr).toBe(5);

    await es.indices.refresh({ index: written });
    const hits = (await es.search({ index: written, size: 1000, query: { match_all: {} } })).hits.hits;
    // Ids too: gather-latest's are made of host and result name (a leaked name would show there).
    const indexed = JSON.stringify(hits.map((hit) => [hit._index, hit._id, hit._source]));
    const of = (base: string) => hits.filter((hit) => hit._index === base || hit._index.startsWith(`${base}-2`));
    expect(of(indices.results)).toHaveLength(8);
    expect(of(indices.runs)).toHaveLength(2);
    expect(of(indices.errors).length).toBeGreaterThan(0);
    // The current state: one document per result name of the host (4), one per host.
    expect(of(indices.latest)).toHaveLength(4);
    expect(of(indices.hosts)).toHaveLength(1);
    expect(JSON.stringify(of(indices.latest).map((hit) => hit._source))).toContain('[redacted]');
    expect(indexed).toContain('[redacted]');
    for (const value of Object.values(secrets)) {
      expect(indexed).not.toContain(value);
      expect(viaCredential.stderr + viaEnv.stderr).not.toContain(value);
    }
  });
});
