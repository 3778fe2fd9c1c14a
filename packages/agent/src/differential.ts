/**
 * Differential results (osquery's scheduled-query model): the agent keeps, per category, the last results it
 * reported (`<stateDir>/results-<category>.json`) and each run exports only what was added, changed or
 * removed since. A full snapshot (`change: "snapshot"`) is exported instead on the first run, when the bundle
 * version changes, when the state cannot be trusted (missing, damaged, or documents of an earlier run were
 * dropped from the spool) and every `snapshotIntervalSec`. Error records and run summaries always go out.
 *
 * The state is written (atomically) only after the exporter delivered or durably spooled every document: a
 * crash at any point leaves the previous state, so the next run reports the same changes again (the worst
 * case is a change reported twice, never one missed).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import {
  CATEGORIES,
  type Category,
  type DocumentBase,
  type ErrorDocument,
  type ExportSummary,
  type Exporter,
  type ResultChange,
  type ResultDocument,
  type ResultType,
  type RunSummaryDocument,
  readFileNoFollow,
} from '@gather/core';
import type { ResultsMode } from './config.js';

/** What one category's state file holds: every result last reported, by name. */
interface CategoryState {
  format: 1;
  bundle: string;
  snapshot_at: string;
  results: Record<string, { check: string; type: ResultType; value: unknown }>;
}

export interface ChangeCounts {
  added: number;
  changed: number;
  removed: number;
  snapshot: number;
  unchanged: number;
}

export interface DifferentialOptions {
  stateDir: string;
  mode: ResultsMode;
  snapshotIntervalSec: number;
  now?: () => Date;
}

const FILE = (category: Category) => `results-${category}.json`;

function sameValue(a: { type: string; value: unknown }, b: { type: string; value: unknown }): boolean {
  return a.type === b.type && JSON.stringify(a.value) === JSON.stringify(b.value);
}

function parseState(text: string): CategoryState | undefined {
  try {
    const state = JSON.parse(text) as CategoryState;
    if (state?.format !== 1 || typeof state.bundle !== 'string' || typeof state.snapshot_at !== 'string') return undefined;
    if (typeof state.results !== 'object' || state.results === null || Array.isArray(state.results)) return undefined;
    return state;
  } catch {
    return undefined;
  }
}

/** Writes a file so that a crash leaves either the old or the new content: O_EXCL temp file, fsync, rename. */
export async function writeAtomic(path: string, content: string): Promise<void> {
  const temp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  const handle = await open(temp, 'wx', 0o600);
  try {
    await handle.writeFile(content);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
  const dir = await open(join(path, '..'), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

/** Per run: wraps the exporter, filters results against the state, and commits the new state at the end. */
export class DifferentialResults {
  readonly counts: ChangeCounts = { added: 0, changed: 0, removed: 0, snapshot: 0, unchanged: 0 };
  private readonly now: () => Date;
  /** Per category seen in this run: the state read, whether this run is a snapshot, the state to commit. */
  private readonly categories = new Map<Category, { previous: CategoryState | undefined; snapshot: boolean; next: CategoryState }>();
  private readonly checksWithErrors = new Set<string>();
  private readonly checksSeen = new Map<string, Category>();
  private base: DocumentBase | undefined;
  private readonly reported = new Map<Category, Set<string>>();
  private removalsSent = false;

  constructor(private readonly options: DifferentialOptions) {
    this.now = options.now ?? (() => new Date());
  }

  /** The exporter the run uses: results pass through the diff, everything else unchanged. */
  wrap(inner: Exporter): Exporter {
    const wrapped: Exporter = {
      name: inner.name,
      exportResults: async (results) => {
        const out = await this.filter(results);
        if (out.length > 0) await inner.exportResults(out);
      },
      exportErrors: async (errors) => {
        for (const error of errors) this.noteError(error);
        await inner.exportErrors(errors);
      },
      flush: async () => {
        const removed = this.removals();
        if (removed.length > 0) await inner.exportResults(removed);
        return inner.flush();
      },
      close: async () => {
        const removed = this.removals();
        if (removed.length > 0) await inner.exportResults(removed);
        return inner.close();
      },
    };
    if (inner.exportRunSummary) wrapped.exportRunSummary = (summary) => inner.exportRunSummary!(summary);
    if (inner.summary) wrapped.summary = () => inner.summary!();
    return wrapped;
  }

  /** Fields for the run summary: what was exported and what was left out as unchanged. */
  summaryFields(): Pick<RunSummaryDocument, 'changes'> {
    return { changes: { ...this.counts, mode: [...this.categories.values()].some((c) => c.snapshot) ? 'snapshot' : 'differential' } };
  }

  /**
   * After the exporter closed: keeps the new state when every document was delivered or spooled; forgets
   * every category's state when documents of any run were dropped from the spool (they may have been changes).
   */
  async commit(totals: ExportSummary, exportFailed: boolean): Promise<'committed' | 'kept' | 'invalidated'> {
    if ((totals.dropped ?? 0) > 0 || ((totals as { unreadable?: number }).unreadable ?? 0) > 0) {
      await invalidateState(this.options.stateDir);
      return 'invalidated';
    }
    if (exportFailed || totals.failed > 0 || this.options.mode === 'snapshot') return 'kept';
    await mkdir(this.options.stateDir, { recursive: true, mode: 0o700 });
    for (const [category, { next }] of this.categories) {
      await writeAtomic(join(this.options.stateDir, FILE(category)), JSON.stringify(next));
    }
    return 'committed';
  }

  private async stateOf(category: Category, doc: ResultDocument) {
    let entry = this.categories.get(category);
    if (entry) return entry;
    let previous: CategoryState | undefined;
    if (this.options.mode === 'differential') {
      const text = await readFileNoFollow(join(this.options.stateDir, FILE(category))).catch(() => undefined);
      previous = text === undefined ? undefined : parseState(text);
    }
    const now = this.now();
    const snapshot =
      !previous ||
      previous.bundle !== doc.bundle.version ||
      !(now.getTime() - Date.parse(previous.snapshot_at) < this.options.snapshotIntervalSec * 1000);
    const next: CategoryState = snapshot
      ? { format: 1, bundle: doc.bundle.version, snapshot_at: now.toISOString(), results: {} }
      : { ...previous!, results: { ...previous!.results } };
    entry = { previous, snapshot, next };
    this.categories.set(category, entry);
    return entry;
  }

  private async filter(results: readonly ResultDocument[]): Promise<ResultDocument[]> {
    const out: ResultDocument[] = [];
    for (const doc of results) {
      this.base ??= doc;
      this.checksSeen.set(doc.check, doc.category);
      this.note(doc.category, doc.name);
      const { previous, snapshot, next } = await this.stateOf(doc.category, doc);
      const current = { check: doc.check, type: doc.type, value: doc.value };
      const before = previous?.results[doc.name];
      next.results[doc.name] = current;
      let change: ResultChange | undefined;
      if (snapshot) change = 'snapshot';
      else if (!before) change = 'added';
      else if (!sameValue(before, current)) change = 'changed';
      if (change === undefined) {
        this.counts.unchanged++;
        continue;
      }
      this.counts[change]++;
      out.push({ ...doc, change });
    }
    return out;
  }

  private noteError(error: ErrorDocument): void {
    this.base ??= error;
    if (error.check) {
      this.checksWithErrors.add(error.check);
      if (error.category) this.checksSeen.set(error.check, error.category);
    }
  }

  /**
   * Results gone since the state, as `change: "removed"` with their last value: only of checks that ran
   * without error in this run (a check that failed or did not run says nothing about its results).
   */
  private removals(): ResultDocument[] {
    if (this.removalsSent || !this.base) return [];
    this.removalsSent = true;
    const removed: ResultDocument[] = [];
    const timestamp = this.now().toISOString();
    for (const [category, { snapshot, previous, next }] of this.categories) {
      if (snapshot || !previous) continue;
      for (const [name, last] of Object.entries(previous.results)) {
        if (this.checksSeen.get(last.check) !== category || this.checksWithErrors.has(last.check)) continue;
        if (!this.reportedThisRun(category, name)) {
          delete next.results[name];
          this.counts.removed++;
          removed.push({
            kind: 'result',
            '@timestamp': timestamp,
            run_id: this.base.run_id,
            host: this.base.host,
            ...(this.base.user ? { user: this.base.user } : {}),
            ...(this.base.cloud ? { cloud: this.base.cloud } : {}),
            agent: this.base.agent,
            bundle: this.base.bundle ?? { version: previous.bundle, sha256: '' },
            category,
            check: last.check,
            duration_ms: 0,
            name,
            type: last.type,
            value: last.value,
            change: 'removed',
          });
        }
      }
    }
    return removed;
  }

  private reportedThisRun(category: Category, name: string): boolean {
    return this.reported.get(category)?.has(name) ?? false;
  }

  /** Remembers which names this run printed. */
  private note(category: Category, name: string): void {
    let names = this.reported.get(category);
    if (!names) this.reported.set(category, (names = new Set()));
    names.add(name);
  }
}

/** What the agent remembers of its host for the one document per host (gather-hosts). */
export interface HostHistory {
  first_seen?: string;
  last_runs?: NonNullable<RunSummaryDocument['last_runs']>;
}

const HOST_FILE = 'host.json';

export async function readHostHistory(stateDir: string): Promise<HostHistory> {
  try {
    const history = JSON.parse(await readFileNoFollow(join(stateDir, HOST_FILE))) as HostHistory;
    return typeof history === 'object' && history !== null ? history : {};
  } catch {
    return {};
  }
}

/** Records the run (first seen, last run of its categories) for the next run's host document. */
export async function saveHostHistory(stateDir: string, history: HostHistory, summary: RunSummaryDocument): Promise<void> {
  const run = { '@timestamp': summary['@timestamp'], run_id: summary.run_id, outcome: summary.outcome };
  const categories = summary.category === 'all' ? CATEGORIES : [summary.category];
  const next: HostHistory = {
    first_seen: history.first_seen ?? summary['@timestamp'],
    last_runs: { ...history.last_runs, ...Object.fromEntries(categories.map((c) => [c, run])) },
  };
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  await writeAtomic(join(stateDir, HOST_FILE), JSON.stringify(next));
}

/** Forgets every category's state: the next run of each exports a full snapshot. */
export async function invalidateState(stateDir: string): Promise<void> {
  const files = await readdir(stateDir).catch(() => [] as string[]);
  for (const category of CATEGORIES) if (files.includes(FILE(category))) await rm(join(stateDir, FILE(category)), { force: true });
}
