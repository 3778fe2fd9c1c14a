import type { BulkOp } from './latest.js';

/** One document on its way: the bulk action target, its deterministic id, its JSON source. */
export interface Entry {
  index: string;
  id: string;
  source: string;
  bytes: number;
  /** A dead letter (its failure is final). */
  deadLetter?: boolean;
  /** The bulk operation (default `create`); the current-state indices index and delete. */
  op?: BulkOp;
  /** External version (ms) of an `index`/`delete` in the current-state indices. */
  version?: number;
}

/** What became of a batch of entries. */
export interface BatchOutcome {
  /** Documents of the run acknowledged; the current-state writes (entries with an `op`) are not counted. */
  delivered: number;
  /** Current-state writes acknowledged: not documents of the run, so in no total. */
  currentState?: number;
  deadLettered: number;
  failed: number;
  /** Entries Elasticsearch could not take now (down, auth, kept failing): to spool, or left in the spool. */
  undeliverable: Entry[];
  cause?: unknown;
}

/** An item of a bulk response. */
export interface BulkItem {
  status: number;
  error?: { type?: string; reason?: string };
}
