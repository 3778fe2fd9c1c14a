/**
 * Builds the fetcher and the exporter the configuration selects. The S3 fetcher and the Elasticsearch
 * exporter are optional peer dependencies: they are imported only here, dynamically, only when selected, so
 * an agent that reads a local bundle and writes NDJSON never loads (nor needs) their SDKs.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, createFileExporter, createFileFetcher, createStdoutExporter, type Exporter, type Fetcher } from '@gather/core';
import type { EsExporterOptions } from '@gather/exporter-es';
import type { S3FetcherOptions } from '@gather/fetcher-s3';
import { compileWithBaselineOnly } from './baseline-compiler.js';
import type { AgentConfig } from './config.js';
import { logTakeover } from './lock.js';
import type { Logger } from './logger.js';
import { credentialPath, CREDENTIALS } from './secrets.js';

type Importer = (specifier: string) => Promise<unknown>;

/**
 * The single binary (tools/binary) has both adapters inside and registers them here, each evaluated only
 * when selected; an npm install imports the packages.
 */
const BUNDLED_ADAPTERS = Symbol.for('gather.bundledAdapters');
type BundledAdapters = Record<string, (() => Promise<unknown>) | undefined>;

const defaultImporter: Importer = (specifier) => {
  const bundled = (globalThis as { [BUNDLED_ADAPTERS]?: BundledAdapters })[BUNDLED_ADAPTERS]?.[specifier];
  return bundled ? bundled() : import(specifier);
};

/**
 * The command that installs an adapter next to this agent, told apart by where the agent's own code lives:
 * a global npm or pnpm install, a project's node_modules, or a clone of the repository (pnpm workspace).
 * The single binary (`pnpm build:binary`) has both adapters inside and never needs one.
 */
export function installHint(specifier: string, agentFile: string): string {
  if (/[\\/]pnpm[\\/]global[\\/]/.test(agentFile)) return `pnpm add --global ${specifier}`;
  if (/[\\/]lib[\\/]node_modules[\\/]@gather[\\/]agent[\\/]/.test(agentFile)) return `npm install --global ${specifier}`;
  const modules = agentFile.lastIndexOf('/node_modules/');
  if (modules >= 0) return `cd ${agentFile.slice(0, modules)} && npm install ${specifier}`;
  return 'pnpm install (at the root of the gather repository: the workspace has every adapter)';
}

/** Where this agent's code lives; the single executable has no module URL (its code is inside the binary). */
function ownFile(): string {
  return import.meta.url ? fileURLToPath(import.meta.url) : process.execPath;
}

/** Imports an optional adapter package, or throws a ConfigError that says how to install it. */
export async function importOptional<T>(
  specifier: string,
  purpose: string,
  importer: Importer = defaultImporter,
  agentFile?: string,
): Promise<T> {
  compileWithBaselineOnly();
  try {
    return (await importer(specifier)) as T;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const message = (error as Error).message ?? '';
    // Only the package itself missing: a broken install of one of its own dependencies is a different problem.
    if ((code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') && message.includes(`'${specifier}'`)) {
      throw new ConfigError(`Install ${specifier} to ${purpose}: ${installHint(specifier, agentFile ?? ownFile())}`, { cause: error });
    }
    throw error;
  }
}

export interface AdapterOptions {
  logger: Logger;
  /** Keep the S3 bundle in `<stateDir>/bundle-cache` between runs (conditional GETs). Default true. */
  cache?: boolean;
  /** Append to the NDJSON file instead of truncating it. */
  append?: boolean;
  /** Aborting it makes the exporter give up on requests in flight and spool what was not acknowledged. */
  exportSignal?: AbortSignal;
  importer?: Importer;
  /**
   * A one-off `gather-agent run`: no later attempt happens in this process, so an Elasticsearch outage is
   * reported as "the next run sends them", never as a retry that the run would then not wait for.
   */
  oneShot?: boolean;
}

/** The exporter's outage line, reworded for a one-off run (see AdapterOptions.oneShot). */
export function oneShotOutageLine(line: string): string {
  return line.replace(/ and retrying in \d+ s\.$/, '; the next gather-agent run (or the daemon) sends them first.');
}

/**
 * The bundle source as one normalized string: the key under which the highest accepted bundle sequence is
 * kept (`<stateDir>/bundle-sequence/`). The endpoint is part of it: the same bucket name elsewhere is another source.
 */
export function bundleSourceKey(config: AgentConfig): string {
  const source = config.source;
  if (source.kind === 'file') return `file:${source.path}`;
  const where = source.prefix !== undefined ? `prefix:${source.prefix.replace(/^\/+|\/+$/g, '')}` : `key:${source.key}`;
  return `s3:${config.s3.endpoint ?? 'aws'}:${source.bucket}:${where}`;
}

export async function createFetcher(config: AgentConfig, options: AdapterOptions): Promise<Fetcher> {
  const source = config.source;
  if (source.kind === 'file') return createFileFetcher({ path: source.path });
  const s3 = await importOptional<typeof import('@gather/fetcher-s3')>('@gather/fetcher-s3', 'fetch bundles from S3', options.importer);
  // A systemd credential (LoadCredential=aws-credentials:...) is the AWS SDK's shared credentials file.
  const awsCredentials = credentialPath(process.env, CREDENTIALS.awsCredentials);
  if (awsCredentials && !process.env.AWS_SHARED_CREDENTIALS_FILE) process.env.AWS_SHARED_CREDENTIALS_FILE = awsCredentials;
  // GATHER_S3_ACCESS_KEY_ID + GATHER_S3_SECRET_ACCESS_KEY, as `gather-bundle publish` and tools/services use
  // them; without both, the AWS SDK chain (AWS_* variables, profile, instance role).
  const { credentials, credentialsSource } = s3.s3OptionsFromEnv();
  const fetcherOptions: S3FetcherOptions = {
    ...(credentials ? { credentials, credentialsSource } : {}),
    bucket: source.bucket,
    ...(source.prefix !== undefined ? { prefix: source.prefix } : {}),
    ...(source.key !== undefined ? { key: source.key } : {}),
    ...(config.s3.endpoint ? { endpoint: config.s3.endpoint } : {}),
    ...(config.s3.region ? { region: config.s3.region } : {}),
    ...((options.cache ?? true) ? { cacheDir: join(config.stateDir, 'bundle-cache') } : {}),
    onRetry: (info) => options.logger.warn('retrying the bundle download', { component: 'fetcher-s3', ...info }),
    onLockTakeover: logTakeover(options.logger),
  };
  return s3.createS3Fetcher(fetcherOptions);
}

export async function createExporter(config: AgentConfig, options: AdapterOptions): Promise<Exporter> {
  switch (config.exporter) {
    case 'stdout':
      return createStdoutExporter();
    case 'file':
      return createFileExporter({ path: config.out!, append: options.append ?? false });
    case 'elasticsearch': {
      const es = config.elasticsearch!;
      const module = await importOptional<typeof import('@gather/exporter-es')>(
        '@gather/exporter-es',
        'export to Elasticsearch',
        options.importer,
      );
      const exporterOptions: EsExporterOptions = {
        node: es.url,
        ...(es.apiKey
          ? { auth: { apiKey: es.apiKey } }
          : es.username
            ? { auth: { username: es.username, password: es.password ?? '' } }
            : {}),
        ...(es.ca ? { tls: { ca: es.ca } } : {}),
        ...(es.resultsIndex ? { resultsIndex: es.resultsIndex } : {}),
        ...(es.errorsIndex ? { errorsIndex: es.errorsIndex } : {}),
        ...(es.runsIndex ? { runsIndex: es.runsIndex } : {}),
        ...(es.latestIndex ? { latestIndex: es.latestIndex } : {}),
        ...(es.hostsIndex ? { hostsIndex: es.hostsIndex } : {}),
        ...(es.indexSettings ? { indexSettings: es.indexSettings } : {}),
        spoolDir: config.spoolDir,
        stateDir: config.stateDir,
        ...(config.spoolMaxBytes ? { spoolMaxBytes: config.spoolMaxBytes } : {}),
        ...(options.exportSignal ? { signal: options.exportSignal } : {}),
        currentState: true,
        // At the exporter's level (spool delivery is info, an outage warn); an older exporter passes none: warn.
        log: (line, level) =>
          options.logger[level ?? 'warn'](options.oneShot ? oneShotOutageLine(line) : line, { component: 'exporter-es' }),
      };
      return module.createEsExporter(exporterOptions);
    }
  }
}
