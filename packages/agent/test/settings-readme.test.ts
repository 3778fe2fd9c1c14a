// The README's configuration table is generated from the settings (src/settings.ts): this test fails when it
// is stale; `GATHER_UPDATE_TABLE=1 pnpm --filter @gather/agent exec vitest run test/settings-readme.test.ts`
// rewrites it.
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { settingsTable, TABLE_END, TABLE_START } from '../src/settings-readme.js';
import { OTHER_SETTINGS, SETTINGS } from '../src/settings.js';

const README = fileURLToPath(new URL('../../../README.md', import.meta.url));

describe('the README configuration table', () => {
  it('is the one generated from the settings', () => {
    const text = readFileSync(README, 'utf8');
    const from = text.indexOf(TABLE_START);
    const to = text.indexOf(TABLE_END);
    expect(from, 'README.md needs the settings-table markers').toBeGreaterThan(-1);
    expect(to).toBeGreaterThan(from);
    const table = settingsTable();
    if (process.env.GATHER_UPDATE_TABLE === '1') writeFileSync(README, text.slice(0, from + TABLE_START.length) + table + text.slice(to));
    else expect(text.slice(from + TABLE_START.length, to), 'run with GATHER_UPDATE_TABLE=1 to regenerate the table').toBe(table);
  });

  it('has a row naming every variable and flag the parser reads', () => {
    const table = settingsTable();
    const generic = (name: string) => name.replace(/ABUSE|ANALYTICS/, '<C>').replace(/abuse|analytics/, '<c>');
    for (const setting of [...SETTINGS, ...OTHER_SETTINGS]) {
      if (setting.env) expect(table).toContain(`\`${generic(setting.env)}\``);
      if (setting.flag) expect(table).toContain(`\`--${generic(setting.flag)}\``);
      expect(table).toContain(`\`${generic(setting.key)}\``);
    }
  });
});
