/**
 * The agent's own secrets, wherever they come from, so that every log line and exported document can be
 * scrubbed of them: checks run as root and can read the agent's environment (/proc/<pid>/environ) and files.
 *
 * Also systemd credentials: with `LoadCredential=<name>:<file>` in the unit, systemd hands the file to the
 * agent as `$CREDENTIALS_DIRECTORY/<name>` (readable by the agent only, never in its environment).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** The credential names the agent looks for in `$CREDENTIALS_DIRECTORY`. */
export const CREDENTIALS = {
  esApiKey: 'es-api-key',
  esPassword: 'es-password',
  /** An AWS shared credentials file (`[default]` with aws_access_key_id / aws_secret_access_key). */
  awsCredentials: 'aws-credentials',
} as const;

/** Path of a systemd credential, when the unit passed it. */
export function credentialPath(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const dir = env.CREDENTIALS_DIRECTORY;
  if (!dir) return undefined;
  const path = join(dir, name);
  return existsSync(path) ? path : undefined;
}

/** Credentials are keys and passwords; anything larger is not scrubbed whole (its AWS values still are). */
const MAX_CREDENTIAL_CHARS = 64 * 1024;

/** Variables that may hold a secret of the agent (AWS SDK chain, the S3 variables of gather's tools, ES). */
const SECRET_VARIABLES = [
  'AWS_SECRET_ACCESS_KEY',
  'AWS_SESSION_TOKEN',
  'AWS_SECURITY_TOKEN',
  'GATHER_S3_SECRET_ACCESS_KEY',
  'GATHER_S3_SESSION_TOKEN',
  'GATHER_ES_API_KEY',
  'GATHER_ES_PASSWORD',
];

/** The shared credentials file the AWS SDK reads: the systemd credential first, then the SDK's own rules. */
export function awsCredentialsFile(env: NodeJS.ProcessEnv, home: string): string {
  return env.AWS_SHARED_CREDENTIALS_FILE || credentialPath(env, CREDENTIALS.awsCredentials) || join(home, '.aws', 'credentials');
}

/** Secret values of an AWS credentials/config file (every profile): secret keys and session tokens. */
export function awsFileSecrets(text: string): string[] {
  const secrets: string[] = [];
  for (const line of text.split(/\r?\n/)) {
    const match = /^\s*(aws_secret_access_key|aws_session_token|aws_security_token)\s*=\s*(.*?)\s*$/i.exec(line);
    if (match?.[2]) secrets.push(match[2]);
  }
  return secrets;
}

/**
 * Every secret of the agent found outside its configuration: environment variables, AWS files, and every
 * systemd credential (used or not: a check running as root can read them all).
 */
export function environmentSecrets(env: NodeJS.ProcessEnv, home: string): string[] {
  const secrets = SECRET_VARIABLES.map((name) => env[name]).filter((value): value is string => Boolean(value));
  if (env.CREDENTIALS_DIRECTORY) {
    let names: string[] = [];
    try {
      names = readdirSync(env.CREDENTIALS_DIRECTORY);
    } catch {
      // No directory: no credentials.
    }
    for (const name of names) {
      try {
        const text = readFileSync(join(env.CREDENTIALS_DIRECTORY, name), 'utf8');
        if (text.length <= MAX_CREDENTIAL_CHARS) secrets.push(text.trim());
        secrets.push(...awsFileSecrets(text));
      } catch {
        // Not a readable file.
      }
    }
  }
  for (const file of new Set([awsCredentialsFile(env, home), env.AWS_CONFIG_FILE || join(home, '.aws', 'config')])) {
    try {
      secrets.push(...awsFileSecrets(readFileSync(file, 'utf8')));
    } catch {
      // No such file: nothing to scrub.
    }
  }
  return secrets;
}
