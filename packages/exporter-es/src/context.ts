/** What the parts of one exporter share: its settings, its connection, its health, its totals and its spool. */
import type { ExportError, Scrubber } from '@gather/core';
import type { EsExportSummary } from './exporter.js';
import type { EsLogLevel, EsSettings } from './options.js';
import type { Outage } from './outage.js';
import type { Spool } from './spool.js';
import type { EsTransport } from './transport.js';

export interface ExportContext {
  readonly settings: EsSettings;
  readonly transport: EsTransport;
  readonly outage: Outage;
  /** The totals so far (the core summary plus what this exporter also counts). */
  readonly stats: EsExportSummary;
  /** Its own credentials scrubbed from every document (the agent also scrubs its whole secret set before). */
  readonly scrub: Scrubber;
  /**
   * Indices whose daily indices carry the alias of their plain name (no concrete index of that name exists):
   * spooled records of an older gather naming the plain index are sent to the daily index instead.
   */
  readonly plainIndices: Set<string>;
  /** Told to stop waiting for Elasticsearch. */
  readonly signal: AbortSignal | undefined;
  /** Open after the first call when a spoolDir is set. */
  spool: Spool | undefined;
  /** A failure to report once, at the end of the current call. */
  pendingError: ExportError | undefined;
  log(level: EsLogLevel, line: string): void;
  /** A message with every credential redacted. */
  text(message: string): string;
}
