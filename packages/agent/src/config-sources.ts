/**
 * Where settings come from and which wins: the JSON file, then `GATHER_*` environment variables, then flags,
 * each overriding the one before. Each value keeps its origin, so that a problem names where to fix it, and
 * is checked against its setting's rule (settings.ts) when read.
 */
import { readFileSync } from 'node:fs';
import { durationProblem, indexNameProblem } from '@gather/core';
import { SETTINGS, SETTING_BY_KEY, valueType, type Setting } from './settings.js';

/** Flags as parsed from the command line (only the ones given). */
export type Flags = Record<string, string | boolean | undefined>;

/** Where a value came from, for messages. */
export type Origin = { kind: 'file'; file: string; key: string } | { kind: 'env'; name: string } | { kind: 'flag'; name: string };

export function describeOrigin(origin: Origin): string {
  if (origin.kind === 'flag') return `--${origin.name}`;
  if (origin.kind === 'env') return origin.name;
  return `"${origin.key}" in ${origin.file}`;
}

/** Flag over environment over file: the higher wins when a secret is given both directly and as a file. */
export function rank(origin: Origin): number {
  return origin.kind === 'flag' ? 2 : origin.kind === 'env' ? 1 : 0;
}

export interface Raw {
  value: string | number | boolean;
  origin: Origin;
}

/** Flattens the JSON file to `a.b.c` keys; reports unknown keys. `checkSettings` is kept whole. */
function flattenFile(data: unknown, file: string, problems: string[]): Map<string, unknown> {
  const out = new Map<string, unknown>();
  const sections = new Set(
    SETTINGS.flatMap((s) =>
      s.key
        .split('.')
        .slice(0, -1)
        .map((_, i, parts) => parts.slice(0, i + 1).join('.')),
    ),
  );
  const walk = (value: unknown, prefix: string) => {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      problems.push(`${prefix || '(top level)'}: must be an object (in ${file})`);
      return;
    }
    for (const [name, item] of Object.entries(value)) {
      const key = prefix ? `${prefix}.${name}` : name;
      if (key === 'checkSettings') out.set(key, item);
      else if (sections.has(key)) walk(item, key);
      else if (SETTING_BY_KEY.has(key)) out.set(key, item);
      else problems.push(`${key}: unknown setting (in ${file}); see the README's configuration table`);
    }
  };
  walk(data, '');
  return out;
}

/**
 * Reads the JSON file: the default one is optional (environment and flags may say everything), a named one
 * is not. `trusted` refuses a file root does not own alone (as root).
 */
export function readConfigFile(
  configFile: string,
  explicit: boolean,
  trusted: (key: string, path: string, what: string) => boolean,
  problems: string[],
): { values: Map<string, unknown>; read: string | undefined } {
  let text: string | undefined;
  try {
    text = readFileSync(configFile, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (explicit || code !== 'ENOENT') problems.push(`${configFile}: cannot read the configuration file (${code})`);
  }
  if (text === undefined || !trusted('config', configFile, 'the configuration file')) return { values: new Map(), read: undefined };
  try {
    return { values: flattenFile(JSON.parse(text), configFile, problems), read: configFile };
  } catch (error) {
    problems.push(`${configFile}: not valid JSON (${(error as Error).message})`);
    return { values: new Map(), read: configFile };
  }
}

/** Merges file < env < flags into one value (with its origin) per configured setting. */
export function mergeSources(
  fileValues: Map<string, unknown>,
  configFile: string,
  env: NodeJS.ProcessEnv,
  flags: Flags,
  problems: string[],
): Map<string, Raw> {
  const raw = new Map<string, Raw>();
  for (const setting of SETTINGS) {
    const flag = setting.flag ? flags[setting.flag] : undefined;
    const envValue = setting.env ? env[setting.env] : undefined;
    if (flag !== undefined && flag !== '') raw.set(setting.key, { value: flag, origin: { kind: 'flag', name: setting.flag! } });
    else if (envValue !== undefined && envValue !== '')
      raw.set(setting.key, { value: envValue, origin: { kind: 'env', name: setting.env! } });
    else if (fileValues.has(setting.key)) {
      const value = fileValues.get(setting.key);
      const origin: Origin = { kind: 'file', file: configFile, key: setting.key };
      if (value === null || value === undefined) continue;
      if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') {
        problems.push(`${setting.key}: ${describeOrigin(origin)} must be a ${valueType(setting)}`);
        continue;
      }
      raw.set(setting.key, { value, origin });
    }
  }
  return raw;
}

/** The URL when `text` is an http(s) URL (the test the adapters apply to their endpoints), else undefined. */
export function parseHttpUrl(text: string): URL | undefined {
  try {
    const url = new URL(text);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url : undefined;
  } catch {
    return undefined;
  }
}

const asNumber = (value: string | number | boolean): number =>
  typeof value === 'number' ? value : typeof value === 'string' && value.trim() !== '' ? Number(value) : NaN;

/**
 * The merged values, each checked against its setting's rule the first time it is read: a value that breaks
 * its rule is one problem (`key: origin must be ...`) and reads as unset.
 */
export class SettingValues {
  private readonly checked = new Map<string, string | number | boolean | undefined>();

  constructor(
    readonly raw: ReadonlyMap<string, Raw>,
    private readonly problems: string[],
  ) {}

  has(key: string): boolean {
    return this.raw.has(key);
  }

  origin(key: string): Origin | undefined {
    return this.raw.get(key)?.origin;
  }

  /** Where the value of `key` came from, for a message (`--es-url`, `GATHER_ES_URL` or `"x" in file`). */
  where(key: string): string {
    const origin = this.origin(key);
    return origin ? describeOrigin(origin) : key;
  }

  string(key: string): string | undefined {
    return this.value(key) as string | undefined;
  }

  number(key: string): number | undefined {
    return this.value(key) as number | undefined;
  }

  boolean(key: string): boolean | undefined {
    return this.value(key) as boolean | undefined;
  }

  /** A setting with a `oneOf` rule, typed as its values. */
  choice<T extends string>(key: string, _values: readonly T[]): T | undefined {
    return this.value(key) as T | undefined;
  }

  /** The checked value, else the setting's default (undefined when it has none or the value is refused). */
  value(key: string): string | number | boolean | undefined {
    const setting = SETTING_BY_KEY.get(key);
    if (!setting) throw new Error(`unknown setting ${key}`);
    if (!this.checked.has(key)) this.checked.set(key, this.check(setting));
    const value = this.checked.get(key);
    return value !== undefined || this.raw.has(key) ? value : setting.default;
  }

  private check(setting: Setting): string | number | boolean | undefined {
    const r = this.raw.get(setting.key);
    if (!r) return undefined;
    const { rule, key } = setting;
    const problem = (what: string) => {
      this.problems.push(`${key}: ${describeOrigin(r.origin)} ${what}`);
      return undefined;
    };
    switch (rule.kind) {
      case 'boolean':
        if (typeof r.value === 'boolean') return r.value;
        if (typeof r.value === 'string' && /^(true|1|yes|on)$/i.test(r.value)) return true;
        if (typeof r.value === 'string' && /^(false|0|no|off)$/i.test(r.value)) return false;
        return problem(`must be true or false (got ${JSON.stringify(r.value)})`);
      case 'number': {
        const n = asNumber(r.value);
        const ok =
          Number.isFinite(n) && n >= rule.min && (rule.max === undefined || n <= rule.max) && (!rule.integer || Number.isInteger(n));
        return ok ? n : problem(`must be ${rule.label} (got ${JSON.stringify(r.value)})`);
      }
      case 'duration': {
        // Within its range from core's one table, the same the bundler and the adapters use.
        const n = asNumber(r.value);
        const why = durationProblem(n, rule.range);
        return why === undefined ? n : problem(`${why} (got ${JSON.stringify(r.value)}); set it within that range`);
      }
      default: {
        if (typeof r.value !== 'string') return problem(`must be a string (got ${JSON.stringify(r.value)})`);
        if (rule.kind === 'oneOf' && !rule.values.includes(r.value))
          return problem(`must be one of ${rule.values.join(', ')} (got "${r.value}")`);
        if (rule.kind === 'indexName') {
          const why = indexNameProblem(r.value);
          if (why) return problem(`${why} Set it to a name such as ${JSON.stringify(setting.default)}.`);
        }
        return r.value;
      }
    }
  }
}
