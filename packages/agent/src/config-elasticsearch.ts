/**
 * The Elasticsearch exporter's settings: URL, credentials (given, from a file or a systemd credential), CA,
 * index names and the shards/replicas of gather's templates. Everything the exporter would refuse is refused
 * here, while loading, so a bad value is a configuration error (exit 2) before anything runs.
 */
import { readFileSync } from 'node:fs';
import { parseHttpUrl, rank, type SettingValues } from './config-sources.js';
import { credentialPath, CREDENTIALS } from './secrets.js';

export interface EsConfig {
  url: string;
  apiKey?: string;
  username?: string;
  password?: string;
  /** PEM of the CA, read from `caFile`. */
  ca?: string;
  caFile?: string;
  resultsIndex?: string;
  errorsIndex?: string;
  runsIndex?: string;
  latestIndex?: string;
  hostsIndex?: string;
  /** Settings of the indices gather's templates create (`elasticsearch.shards` / `.replicas`). */
  indexSettings?: Record<string, number>;
}

const INDEX_KEYS = ['resultsIndex', 'errorsIndex', 'runsIndex', 'latestIndex', 'hostsIndex'] as const;

export interface EsLoadContext {
  values: SettingValues;
  env: NodeJS.ProcessEnv;
  configFile: string;
  problems: string[];
  /** As root: the path and every directory above it must be root's and writable by no one else. */
  trusted: (key: string, path: string, what: string) => boolean;
  /** Collects every credential value, for redaction. */
  secrets: string[];
}

/** The exporter's settings, or undefined (with a problem) when the URL is missing. */
export function loadEsConfig({ values, env, configFile, problems, trusted, secrets }: EsLoadContext): EsConfig | undefined {
  const url = values.string('elasticsearch.url');
  if (url === undefined)
    problems.push(
      `elasticsearch.url: the elasticsearch exporter needs --es-url (or GATHER_ES_URL, or "elasticsearch.url" in ${configFile})`,
    );
  else {
    const parsed = parseHttpUrl(url);
    if (!parsed) {
      problems.push(`elasticsearch.url: ${values.where('elasticsearch.url')} must be an http(s) URL such as https://es.example.com:9200`);
    } else if (parsed.password) secrets.push(parsed.password, decodeURIComponent(parsed.password));
  }

  const readSecretFile = (key: string): string | undefined => {
    const path = values.string(key);
    if (path === undefined || !trusted(key, path, 'the secret file')) return undefined;
    try {
      return readFileSync(path, 'utf8').replace(/\r?\n$/, '');
    } catch (error) {
      problems.push(`${key}: cannot read ${path} named by ${values.where(key)} (${(error as NodeJS.ErrnoException).code})`);
      return undefined;
    }
  };
  /** A secret given directly or as a file: the higher-precedence source wins; both at one level is a problem. */
  const secret = (key: string, fileKey: string): string | undefined => {
    const direct = values.origin(key);
    const viaFile = values.origin(fileKey);
    if (direct && viaFile) {
      if (rank(direct) === rank(viaFile)) {
        problems.push(`${key}: set either ${values.where(key)} or ${values.where(fileKey)}, not both`);
        return undefined;
      }
      return rank(direct) > rank(viaFile) ? values.string(key) : readSecretFile(fileKey);
    }
    return direct ? values.string(key) : readSecretFile(fileKey);
  };
  // Else systemd credentials (LoadCredential=es-api-key / es-password): files only the agent can read.
  const credential = (name: string): string | undefined => {
    const path = credentialPath(env, name);
    if (path === undefined) return undefined;
    try {
      return readFileSync(path, 'utf8').replace(/\r?\n$/, '');
    } catch (error) {
      problems.push(`elasticsearch: cannot read the systemd credential ${path} (${(error as NodeJS.ErrnoException).code})`);
      return undefined;
    }
  };

  const username = values.string('elasticsearch.username');
  const configured = (key: string) => values.has(key) || values.has(`${key}File`);
  const apiKey = configured('elasticsearch.apiKey')
    ? secret('elasticsearch.apiKey', 'elasticsearch.apiKeyFile')
    : username === undefined
      ? credential(CREDENTIALS.esApiKey)
      : undefined;
  const password = configured('elasticsearch.password')
    ? secret('elasticsearch.password', 'elasticsearch.passwordFile')
    : username !== undefined
      ? credential(CREDENTIALS.esPassword)
      : undefined;
  const passwordSet = configured('elasticsearch.password') || password !== undefined;
  if (apiKey !== undefined && (username !== undefined || passwordSet)) {
    problems.push('elasticsearch.apiKey: use either an API key or a username and password, not both');
  }
  if ((username === undefined) !== !passwordSet) {
    problems.push(
      username === undefined
        ? 'elasticsearch.username: a password is set but no username (GATHER_ES_USERNAME)'
        : 'elasticsearch.password: a username is set but no password (GATHER_ES_PASSWORD_FILE or GATHER_ES_PASSWORD)',
    );
  }
  const caFile = values.string('elasticsearch.caFile');
  let ca: string | undefined;
  if (caFile !== undefined && trusted('elasticsearch.caFile', caFile, 'the CA file')) {
    try {
      ca = readFileSync(caFile, 'utf8');
    } catch (error) {
      problems.push(`elasticsearch.caFile: cannot read ${caFile} (${(error as NodeJS.ErrnoException).code})`);
    }
  }
  for (const value of [apiKey, password]) if (value) secrets.push(value);
  if (username !== undefined && password) secrets.push(`${username}:${password}`);

  const indices = indexNames(values, problems);
  const indexSettings = templateIndexSettings(values);
  if (url === undefined) return undefined;
  return {
    url,
    ...(apiKey !== undefined ? { apiKey } : {}),
    ...(username !== undefined ? { username } : {}),
    ...(password !== undefined ? { password } : {}),
    ...(caFile !== undefined ? { caFile } : {}),
    ...(ca !== undefined ? { ca } : {}),
    ...indices,
    ...(indexSettings ? { indexSettings } : {}),
  };
}

/**
 * The configured index names (each valid by the exporter's rule). Each index has its own template and
 * mappings, so two settings naming one index (a default included) is a problem, as the exporter would say.
 */
function indexNames(values: SettingValues, problems: string[]): Partial<Pick<EsConfig, (typeof INDEX_KEYS)[number]>> {
  const configured: Partial<Pick<EsConfig, (typeof INDEX_KEYS)[number]>> = {};
  const seen = new Map<string, string>();
  for (const name of INDEX_KEYS) {
    const key = `elasticsearch.${name}`;
    const value = values.string(key);
    if (value === undefined) continue;
    if (values.has(key)) configured[name] = value;
    const clash = seen.get(value);
    if (clash) {
      const which = (k: string) => (values.has(k) ? values.where(k) : `${k} (default)`);
      problems.push(`${key}: ${which(key)} names the same index "${value}" as ${which(clash)}; give each its own index`);
    } else seen.set(value, key);
  }
  return configured;
}

/**
 * Shards and replicas for gather's templates; undefined leaves the exporter's default (replicas following the
 * cluster's size). Naming replicas replaces that default.
 */
function templateIndexSettings(values: SettingValues): Record<string, number> | undefined {
  const shards = values.number('elasticsearch.shards');
  const replicas = values.number('elasticsearch.replicas');
  if (shards === undefined && replicas === undefined) return undefined;
  return {
    ...(shards !== undefined ? { 'index.number_of_shards': shards } : {}),
    ...(replicas !== undefined ? { 'index.number_of_replicas': replicas } : {}),
  };
}
