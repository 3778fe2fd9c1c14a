/**
 * The README's configuration table, generated from settings.ts (test/settings-readme.test.ts fails when the
 * README differs; `GATHER_UPDATE_TABLE=1` rewrites it). Not loaded by the agent at run time.
 */
import { CATEGORIES } from '@gather/core';
import { allowedValues, defaultOf } from './settings-help.js';
import { CATEGORY_SETTINGS, forCategory, OTHER_SETTINGS, SETTINGS, type Setting } from './settings.js';

export const TABLE_START = '<!-- settings-table:start -->\n';
export const TABLE_END = '\n<!-- settings-table:end -->';

const code = (text: string | undefined) => (text ? `\`${text}\`` : '—');
const cell = (text: string) => text.replace(/\|/g, '\\|');

function row(setting: Setting, fallback: string | undefined): string {
  const flag = setting.flag
    ? setting.rule.kind === 'boolean'
      ? `\`--${setting.flag}\` / \`--no-${setting.flag}\``
      : code(`--${setting.flag}`)
    : '—';
  const columns = [
    code(setting.key),
    code(setting.env),
    flag,
    fallback ?? '—',
    allowedValues(setting) ?? '—',
    `${setting.help}${setting.more ?? ''}`,
  ];
  return `| ${columns.map(cell).join(' | ')} |`;
}

/** A category setting's default: one value, or each category's. */
function categoryDefault(setting: Setting): string {
  const values = CATEGORIES.map((c) => defaultOf(forCategory(setting, c))!);
  return new Set(values).size === 1 ? values[0]! : CATEGORIES.map((c, i) => `${values[i]} (${c})`).join(', ');
}

export function settingsTable(): string {
  const categoryKeys = new Set(CATEGORY_SETTINGS.flatMap((s) => CATEGORIES.map((c) => forCategory(s, c).key)));
  return [
    '| file key | variable | flag | default | allowed | meaning |',
    '| --- | --- | --- | --- | --- | --- |',
    ...SETTINGS.filter((s) => !categoryKeys.has(s.key)).map((s) => row(s, defaultOf(s))),
    ...CATEGORY_SETTINGS.map((s) => row({ ...s, help: s.help.replaceAll('<c>', '`<c>`') }, categoryDefault(s))),
    ...OTHER_SETTINGS.map((s) => row(s, defaultOf(s))),
  ].join('\n');
}
