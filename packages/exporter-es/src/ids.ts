import { createHash } from 'node:crypto';
import type { ErrorDocument, ResultDocument, RunSummaryDocument } from '@gather/core';

/** Elasticsearch ids are limited to 512 bytes: longer ones are replaced by their sha256, still deterministic. */
export function boundedId(id: string): string {
  return Buffer.byteLength(id) <= 512 ? id : `sha256:${createHash('sha256').update(id).digest('hex')}`;
}

/**
 * Assigns the deterministic document ids: `<run_id>:<check>:<n>`, `<run_id>:<check|run>:error:<n>` and
 * `<run_id>:run` (the run summary, one per run).
 */
export class DocumentIds {
  private readonly runs = new Map<string, Map<string, number>>();

  constructor(private readonly keepRuns = 16) {}

  private next(runId: string, key: string): number {
    let counters = this.runs.get(runId);
    if (!counters) {
      counters = new Map();
      this.runs.set(runId, counters);
      // A long-lived agent (daemon) sees one run after the other: forget old runs.
      if (this.runs.size > this.keepRuns) this.runs.delete(this.runs.keys().next().value!);
    }
    const n = counters.get(key) ?? 0;
    counters.set(key, n + 1);
    return n;
  }

  result(doc: Pick<ResultDocument, 'run_id' | 'check'>): string {
    return boundedId(`${doc.run_id}:${doc.check}:${this.next(doc.run_id, `r:${doc.check}`)}`);
  }

  error(doc: Pick<ErrorDocument, 'run_id' | 'check'>): string {
    const check = doc.check ?? 'run';
    return boundedId(`${doc.run_id}:${check}:error:${this.next(doc.run_id, `e:${check}`)}`);
  }

  /** The run summary: one per run, so no counter (a re-export of the same summary gets the same id). */
  run(doc: Pick<RunSummaryDocument, 'run_id'>): string {
    return boundedId(`${doc.run_id}:run`);
  }
}
