/**
 * The command line's view of the settings (settings.ts): the flags each command takes and the settings part
 * of its `--help`.
 */
import { DEFAULT_CONFIG_FILE, SETTINGS, type Command, type Setting } from './settings.js';

const COMMANDS_BY_DEFAULT: readonly Command[] = ['run', 'daemon'];

function takes(setting: Setting, command: Command): setting is Setting & { flag: string } {
  return setting.flag !== undefined && (setting.commands ?? COMMANDS_BY_DEFAULT).includes(command);
}

/** The `parseArgs` options of a command's setting flags, plus `--config`. */
export function settingFlags(command: Command): Record<string, { type: 'string' | 'boolean' }> {
  const options: Record<string, { type: 'string' | 'boolean' }> = { config: { type: 'string' } };
  for (const setting of SETTINGS) {
    if (takes(setting, command)) options[setting.flag] = { type: setting.rule.kind === 'boolean' ? 'boolean' : 'string' };
  }
  return options;
}

/** Markdown to plain text: backticks and link targets dropped. */
export function plain(text: string): string {
  return text.replace(/\[([^\]]+)\]\([^)]+\)/g, '$1').replaceAll('`', '');
}

/** What a setting takes, in words (`--help` and the README). */
export function allowedValues(setting: Setting): string | undefined {
  const rule = setting.rule;
  switch (rule.kind) {
    case 'oneOf':
      return rule.values.map((v) => `\`${v}\``).join(', ');
    case 'number':
      return rule.label.replace(/^an? /, '');
    case 'duration':
      return `${rule.range.min}-${rule.range.max} ${rule.range.unit === '%' ? '%' : rule.range.unit}${rule.range.integer ? ', whole' : ''}`;
    case 'boolean':
      return '`true`, `false`';
    case 'indexName':
      return 'index name: lowercase letters, digits, `.`, `_`, `-`';
    case 'text':
      return undefined;
  }
}

export function defaultOf(setting: Setting): string | undefined {
  return setting.defaultDoc ?? (setting.default === undefined ? undefined : `\`${setting.default}\``);
}

/** One `--help` line: the flag, its help, allowed values, default and environment variable. */
function helpLine(setting: Setting & { flag: string }): string {
  const flag =
    setting.rule.kind === 'boolean' ? `--${setting.flag} / --no-${setting.flag}` : `--${setting.flag} ${setting.arg ?? '<value>'}`;
  const notes = [
    setting.rule.kind === 'oneOf' ? `one of ${setting.rule.values.join(', ')}` : undefined,
    defaultOf(setting) === 'required' ? 'required' : defaultOf(setting) ? `default: ${defaultOf(setting)}` : undefined,
  ].filter((note) => note !== undefined);
  const text = plain(`${setting.help}${notes.length ? ` (${notes.join('; ')})` : ''}`);
  return `  ${flag.padEnd(28)} ${text}${setting.env ? `   [${setting.env}]` : ''}`;
}

/** The settings part of a command's `--help`. */
export function settingsHelp(command: Command): string {
  return [
    'Configuration: a JSON file (--config), then GATHER_* environment variables, then these flags, each',
    "overriding the one before (see the README's configuration table for every setting).",
    '',
    `  ${'--config <file>'.padEnd(28)} JSON configuration file (default: ${DEFAULT_CONFIG_FILE} when it exists)   [GATHER_CONFIG]`,
    ...SETTINGS.filter((s) => takes(s, command)).map(helpLine),
    `  ${'-h, --help'.padEnd(28)} Show this help`,
    '',
  ].join('\n');
}
