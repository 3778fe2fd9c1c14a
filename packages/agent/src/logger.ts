/**
 * Structured logs: one JSON object per line on stderr (pino), with a level, and credentials redacted from
 * both the fields (by key name and by value) and the message (core's redact).
 *
 * pino is loaded on the first line actually written: it costs ~10 MB of RSS, which a quiet
 * `gather-agent run` (default level warn) on the user's VM should not pay.
 */
import { createRequire } from 'node:module';
import type { DestinationStream, Logger as PinoLogger } from 'pino';
import { redact, redactText } from '@gather/core';
import type { LogLevel } from './config.js';

export type Fields = Record<string, unknown>;

export interface Logger {
  trace(msg: string, fields?: Fields): void;
  debug(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
  level: LogLevel;
  /** Values to mask from now on (e.g. after a configuration reload). */
  setSecrets(secrets: readonly string[]): void;
}

export interface LoggerOptions {
  level: LogLevel;
  secrets?: readonly string[];
  /** Default: stderr (fd 2), written synchronously so nothing is lost at exit. */
  destination?: NodeJS.WritableStream | { write(text: string): unknown };
  bindings?: Fields;
}

const LEVEL_VALUES: Record<LogLevel, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: Infinity };
const require = createRequire(import.meta.url);

export function createLogger(options: LoggerOptions): Logger {
  let secrets: readonly string[] = options.secrets ?? [];
  let level: LogLevel = options.level;
  let instance: PinoLogger | undefined;
  const load = (): PinoLogger => {
    if (instance) return instance;
    const pino = require('pino') as typeof import('pino');
    instance = pino.pino(
      {
        level,
        base: { pid: process.pid, ...(options.bindings ?? {}) },
        timestamp: pino.stdTimeFunctions.isoTime,
        formatters: {
          level: (label) => ({ level: label }),
          log: (fields) => redact(fields, secrets),
        },
      },
      (options.destination as DestinationStream | undefined) ?? pino.destination({ dest: 2, sync: true }),
    );
    return instance;
  };
  const at =
    (method: 'trace' | 'debug' | 'info' | 'warn' | 'error') =>
    (msg: string, fields: Fields = {}): void => {
      if (LEVEL_VALUES[method] < LEVEL_VALUES[level]) return;
      load()[method](fields, redactText(msg, secrets));
    };
  return {
    trace: at('trace'),
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    get level() {
      return level;
    },
    set level(next: LogLevel) {
      level = next;
      if (instance) instance.level = next;
    },
    setSecrets(next) {
      secrets = next;
    },
  };
}

/** A message for logs from anything thrown. */
export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
