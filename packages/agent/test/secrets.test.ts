import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateSigningKeyPair } from '@gather/checks-bundler';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { awsFileSecrets, environmentSecrets } from '../src/secrets.js';
import { tempDir } from './_helpers.js';

const dir = tempDir();
const publicKey = join(dir, 'key.pub.pem');
writeFileSync(publicKey, generateSigningKeyPair().publicKeyPem);
const home = join(dir, 'home');

function credentials(files: Record<string, string>): string {
  const credentialsDir = tempDir('gather-credentials-');
  for (const [name, text] of Object.entries(files)) writeFileSync(join(credentialsDir, name), text, { mode: 0o600 });
  return credentialsDir;
}

const es = { GATHER_BUNDLE: 'x', GATHER_PUBLIC_KEY: publicKey, GATHER_EXPORTER: 'elasticsearch', GATHER_ES_URL: 'https://es:9200' };

describe('the agent secret set', () => {
  it('reads the Elasticsearch API key from a systemd credential ($CREDENTIALS_DIRECTORY/es-api-key) when none is configured', () => {
    const config = loadConfig({
      env: { ...es, CREDENTIALS_DIRECTORY: credentials({ 'es-api-key': 'Y3JlZC1rZXk6c2VjcmV0\n' }) },
      uid: 0,
      home,
    });
    expect(config.elasticsearch?.apiKey).toBe('Y3JlZC1rZXk6c2VjcmV0');
    expect(config.secrets).toContain('Y3JlZC1rZXk6c2VjcmV0');
  });

  it('reads the password from $CREDENTIALS_DIRECTORY/es-password with a configured username', () => {
    const env = { ...es, GATHER_ES_USERNAME: 'gather', CREDENTIALS_DIRECTORY: credentials({ 'es-password': 'pw-from-credential' }) };
    const config = loadConfig({ env, uid: 0, home });
    expect(config.elasticsearch).toMatchObject({ username: 'gather', password: 'pw-from-credential' });
    expect(config.elasticsearch?.apiKey).toBeUndefined();
  });

  it('a configured key wins over the credential, and the unused credential is still scrubbed', () => {
    const env = { ...es, GATHER_ES_API_KEY: 'configured-key', CREDENTIALS_DIRECTORY: credentials({ 'es-api-key': 'unused-credential' }) };
    const config = loadConfig({ env, uid: 0, home });
    expect(config.elasticsearch?.apiKey).toBe('configured-key');
    expect(config.secrets).toEqual(expect.arrayContaining(['configured-key', 'unused-credential']));
  });

  it('collects AWS secrets from the environment and from shared credentials files, whatever the exporter', () => {
    mkdirSync(join(home, '.aws'), { recursive: true });
    writeFileSync(
      join(home, '.aws', 'credentials'),
      '[default]\naws_access_key_id=AKIA1\naws_secret_access_key = home-secret\n[other]\naws_session_token=tok-en-1\n',
    );
    const secrets = environmentSecrets(
      { AWS_SECRET_ACCESS_KEY: 'env-secret', AWS_SESSION_TOKEN: 'env-token', GATHER_S3_SECRET_ACCESS_KEY: 'gather-s3' },
      home,
    );
    expect(secrets).toEqual(expect.arrayContaining(['env-secret', 'env-token', 'gather-s3', 'home-secret', 'tok-en-1']));
    expect(secrets).not.toContain('AKIA1');
    const config = loadConfig({
      env: { GATHER_BUNDLE: 'x', GATHER_PUBLIC_KEY: publicKey, AWS_SECRET_ACCESS_KEY: 'env-secret' },
      uid: 0,
      home,
    });
    expect(config.secrets).toEqual(expect.arrayContaining(['env-secret', 'home-secret']));
    expect(awsFileSecrets('aws_secret_access_key=a\r\nAWS_SESSION_TOKEN = b ')).toEqual(['a', 'b']);
  });
});
