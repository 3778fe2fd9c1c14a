/**
 * Elasticsearch's health as one exporter sees it: down for a while (an outage window during which documents
 * go straight to the spool, then it is tried again), or failed for good (credentials, a refused request:
 * every later call reports it).
 */
import { ExportError } from '@gather/core';
import { SCOPE, type EsLogLevel, type EsSettings } from './options.js';
import { classify, describe, retryAfterOf, statusOf } from './transport.js';

export class Outage {
  /** Elasticsearch is considered down until then (ms since epoch); 0 when it is not. */
  private openUntil = 0;
  /** When the current window opened (ms since epoch). */
  openedAt = 0;
  /** What made it open. */
  lastCause: unknown;
  /** A failure no retry fixes (credentials, a mapping gather cannot use): every call reports it. */
  fatal: ExportError | undefined;
  /**
   * When the outage the log announced began (ms since epoch), 0 when none is. A run's closing flush tries
   * Elasticsearch again, and the daemon does each cycle: one outage is one warning, and one line when it ends.
   */
  private announcedAt = 0;
  /** Until when the server asked not to be sent anything (its Retry-After; ms since epoch). */
  private serverWaitUntil = 0;

  constructor(
    private readonly settings: EsSettings,
    /** The spool's directory once it is open. */
    private readonly spoolDir: () => string | undefined,
    private readonly log: (level: EsLogLevel, line: string) => void,
    private readonly text: (message: string) => string,
    private readonly random: () => number = Math.random,
  ) {}

  /** When Elasticsearch is tried again (ms since epoch); 0 when it is not down. */
  get reopensAt(): number {
    return this.openUntil;
  }

  isDown(): boolean {
    return this.openUntil > Date.now();
  }

  /** Closes the window early: Elasticsearch is tried again now, unless it asked for a longer wait (Retry-After). */
  probeNow(): void {
    this.openUntil = this.serverWaitUntil > Date.now() ? this.serverWaitUntil : 0;
  }

  markDown(cause: unknown): void {
    const wasDown = this.isDown();
    this.lastCause = cause;
    this.openedAt = Date.now();
    // Jittered (0.5x to 1.5x, the same interval on average): agents that saw one outage together must not all
    // come back in the same second when it ends; and never sooner than the server asked (Retry-After).
    const jittered = Math.round(this.settings.probeIntervalMs * (0.5 + this.random()));
    this.serverWaitUntil = this.openedAt + (retryAfterOf(cause) ?? 0);
    this.openUntil = Math.max(this.openedAt + jittered, this.serverWaitUntil);
    if (!wasDown && this.announcedAt === 0) {
      this.announcedAt = this.openedAt;
      const spoolDir = this.spoolDir();
      this.log(
        'warn',
        `Elasticsearch at ${this.settings.where} is unavailable (${this.text(describe(cause))}); ` +
          (spoolDir
            ? `spooling to ${spoolDir} and retrying in ${Math.round(this.settings.probeIntervalMs / 1000)} s.`
            : 'no spoolDir: documents are lost.'),
      );
    }
  }

  /** Elasticsearch answered a request: an outage the log announced is over. */
  answered(): void {
    if (this.announcedAt === 0) return;
    const seconds = Math.round((Date.now() - this.announcedAt) / 1000);
    this.announcedAt = 0;
    this.log('info', `Elasticsearch at ${this.settings.where} answers again (unavailable for ${seconds} s).`);
  }

  /** Records a request failure: Elasticsearch down (retry later) or fatal (credentials, refused request). */
  fail(error: unknown, doing: string): void {
    const kind = classify(error);
    if (kind === 'retry') {
      this.markDown(error);
      return;
    }
    const { where, resultsIndex, errorsIndex, runsIndex, latestIndex, hostsIndex } = this.settings;
    const detail = this.text(describe(error));
    let message: string;
    if (kind === 'auth' && statusOf(error) === 401) {
      message =
        `Elasticsearch at ${where} rejected the credentials while ${doing} (${detail}). ` +
        'Check the auth option (apiKey, username/password or bearer token): it must be valid and not expired.';
    } else if (kind === 'auth') {
      message =
        `Elasticsearch at ${where} refused access while ${doing} (${detail}). Grant the credentials the privileges ` +
        `create_doc and create_index on ${resultsIndex}-*, ${errorsIndex}-* and ${runsIndex}-*, index on ${latestIndex} and ${hostsIndex}, and manage_index_templates ` +
        '(or set installTemplates: false and install the templates yourself).';
    } else {
      message = `Elasticsearch at ${where} refused the request while ${doing} (${detail}).`;
    }
    const spoolDir = this.spoolDir();
    const line = message + (spoolDir ? ` Documents are kept in the spool (${spoolDir}) until a run succeeds.` : '');
    this.fatal ??= new ExportError(line, SCOPE);
    // The line, not the error's message: the exporter's log adds the "[gather] [exporter-es]" prefix itself.
    this.log('error', line);
  }
}
