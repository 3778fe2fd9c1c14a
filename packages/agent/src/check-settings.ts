/**
 * Check settings: the file's `checkSettings` object, then `GATHER_CHECK_<NAME>` variables over it. Values are
 * short single-line strings (numbers are written as they read); checks validate them and fall back to defaults.
 */
import { CHECK_SETTING_NAME } from '@gather/core';

const CHECK_SETTING_ENV = 'GATHER_CHECK_';

export function loadCheckSettings(fromFile: unknown, file: string, env: NodeJS.ProcessEnv, problems: string[]): Record<string, string> {
  const settings: Record<string, string> = {};
  const add = (name: string, value: unknown, where: string) => {
    if (!CHECK_SETTING_NAME.test(name)) {
      problems.push(
        `${where}: setting names are upper case letters, digits and _ (not CATEGORY, CHECK or RUN_DIR, which the agent sets), e.g. CPU_MIN_SEC`,
      );
    } else if (
      (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') ||
      /[\0\n\r]/.test(String(value)) ||
      String(value).length > 4096
    ) {
      problems.push(`${where}: must be a single-line string, number or boolean of at most 4096 characters`);
    } else settings[name] = String(value);
  };
  if (fromFile !== undefined && fromFile !== null) {
    if (typeof fromFile !== 'object' || Array.isArray(fromFile))
      problems.push(`checkSettings: must be an object such as {"CPU_MIN_SEC": 600} (in ${file})`);
    else for (const [name, value] of Object.entries(fromFile)) add(name, value, `checkSettings.${name} (in ${file})`);
  }
  for (const [name, value] of Object.entries(env)) {
    if (name.startsWith(CHECK_SETTING_ENV) && value !== undefined && value !== '')
      add(name.slice(CHECK_SETTING_ENV.length), value, `checkSettings (environment variable ${name})`);
  }
  return settings;
}
