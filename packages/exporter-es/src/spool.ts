/**
 * The on-disk spool: documents Elasticsearch could not take, kept until a later flush delivers them.
 *
 * Layout of `dir`: append-only segments `spool-<seq>.ndjson`, one bulk-ready record per line
 * (`{"index":..,"id":..,"doc":{..}}`), and `dropped-<seq>.json` reports of segments dropped because the spool
 * was full. Every append is fsynced before it is counted as spooled; creating and deleting files fsyncs the
 * directory. A segment is deleted only once every record in it was acknowledged by Elasticsearch, and
 * records carry their deterministic ids, so a crash at any point can resend records (Elasticsearch answers
 * 409 to `create`: already there) but never loses an fsynced one. A process only appends to segments it
 * created; a torn last line (a crash mid-append, never acknowledged) is ignored when reading.
 */
import { constants } from 'node:fs';
import { lstat, mkdir, open, readdir, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { acquireLock, LockBusyError, openExclusive, readFileNoFollow, writeFileAtomic, type Lock, type LockTakeover } from '@gather/core';

export interface SpoolRecord {
  /** Target index. */
  index: string;
  /** Deterministic document id. */
  id: string;
  /** The document source. */
  doc: Record<string, unknown>;
}

export interface SpoolSegment {
  readonly seq: number;
  readonly file: string;
  bytes: number;
  /** Records in it, when known (segments of this process); counted on demand otherwise. */
  records: number | undefined;
  /** Created by this Spool instance (this exporter's documents) rather than found on disk. */
  readonly own: boolean;
}

export interface DropReport {
  /** Deterministic id of the error document reporting the drop. */
  id: string;
  segment: string;
  docs: number;
  bytes: number;
  /** Spool records' first and last ids, to find what is missing. */
  first_id?: string;
  last_id?: string;
  /** The document base (run id, host, agent) of the first dropped record, when readable. */
  sample?: Record<string, unknown>;
  at: string;
}

export interface SpoolOptions {
  /** Upper bound of the spool's size on disk, in bytes. */
  maxBytes: number;
  /** A segment is closed and a new one started past this size. */
  segmentBytes: number;
  now?: () => Date;
  /** Called when a stale lock (a crashed process's, one from before a reboot) is taken over, e.g. to log it. */
  onLockTakeover?: (takeover: LockTakeover) => void;
}

export interface AppendOutcome {
  /** True when the records are on disk (fsynced). False when they alone exceed `maxBytes`. */
  stored: boolean;
  /** Segments dropped to make room, oldest first. */
  dropped: Array<{ segment: SpoolSegment; docs: number; currentState: number }>;
}

/** The spool directory is used by another live process. */
export class SpoolLockedError extends Error {
  override name = 'SpoolLockedError';
}

const SEGMENT = /^spool-(\d{12})\.ndjson$/;
const REPORT = /^dropped-(\d{12})\.json$/;
const pad = (n: number) => String(n).padStart(12, '0');

async function fsyncDir(dir: string): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(dir, constants.O_RDONLY);
    await handle.sync();
  } catch (error) {
    // Some filesystems refuse fsync on directories; the data files themselves are fsynced.
    if ((error as NodeJS.ErrnoException).code !== 'EINVAL' && (error as NodeJS.ErrnoException).code !== 'EISDIR') throw error;
  } finally {
    await handle?.close();
  }
}

export class Spool {
  private segments: SpoolSegment[] = [];
  private reports: DropReport[] = [];
  private current: { segment: SpoolSegment; handle: FileHandle } | undefined;
  private nextSeq = 1;
  private queue: Promise<void> = Promise.resolve();
  private locked: Lock | undefined;
  private totalBytes = 0;
  private readonly now: () => Date;

  private constructor(
    readonly dir: string,
    private readonly options: SpoolOptions,
  ) {
    this.now = options.now ?? (() => new Date());
  }

  /** Opens (creating it, mode 0700) a spool directory and indexes the segments already in it. */
  static async open(dir: string, options: SpoolOptions): Promise<Spool> {
    const spool = new Spool(dir, options);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await spool.lock();
    const names = (await readdir(dir)).sort();
    let maxSeq = 0;
    for (const name of names) {
      const segment = SEGMENT.exec(name);
      const report = REPORT.exec(name);
      // Only regular files are spool files: a symbolic link planted here is never read or written through.
      const info = segment || report ? await lstat(join(dir, name)) : undefined;
      if (segment || report) maxSeq = Math.max(maxSeq, Number((segment ?? report)![1]));
      if (info && !info.isFile()) continue;
      if (segment) {
        const seq = Number(segment[1]);
        const bytes = info!.size;
        if (bytes === 0) {
          await unlink(join(dir, name));
          continue;
        }
        spool.segments.push({ seq, file: join(dir, name), bytes, records: undefined, own: false });
        spool.totalBytes += bytes;
      } else if (report) {
        try {
          spool.reports.push(JSON.parse(await readFileNoFollow(join(dir, name))) as DropReport);
        } catch {
          // A report torn by a crash before its rename cannot exist (written to a temp name first); skip others.
        }
      }
    }
    spool.nextSeq = maxSeq + 1;
    return spool;
  }

  /**
   * One spool, one process: another one could deliver and delete a segment this one appends to. The lock
   * is core's host lock (owner pid, start time and boot id): one left by a crashed process, by a process
   * whose pid was since reused, or from before a reboot, is taken over, so a leftover file never blocks
   * delivery.
   */
  private async lock(): Promise<void> {
    try {
      this.locked = await acquireLock(join(this.dir, 'spool.lock'), {
        purpose: 'spool',
        waitMs: 0,
        ...(this.options.onLockTakeover ? { onTakeover: this.options.onLockTakeover } : {}),
      });
    } catch (error) {
      if (LockBusyError.isInstance(error)) {
        throw new SpoolLockedError(`${this.dir} is in use by process ${error.owner?.pid ?? 'unknown'}`, { cause: error });
      }
      throw error;
    }
  }

  /** Bytes on disk in segments. */
  get bytes(): number {
    return this.totalBytes;
  }

  /** True when nothing waits for delivery (no segment, no drop report). */
  get empty(): boolean {
    return this.segments.length === 0 && this.reports.length === 0;
  }

  /** Segments waiting for delivery, oldest first (the one being appended to is sealed first). */
  pending(): Promise<SpoolSegment[]> {
    return this.exclusive(async () => {
      await this.seal();
      return [...this.segments];
    });
  }

  /** Drop reports not yet delivered. */
  pendingReports(): DropReport[] {
    return [...this.reports];
  }

  /** Closes the segment being appended to; the next append starts a new one. */
  async seal(): Promise<void> {
    const current = this.current;
    this.current = undefined;
    await current?.handle.close();
  }

  /**
   * Appends records as one chunk (never split across segments) and fsyncs. Makes room first by dropping the
   * oldest segments when the spool would exceed `maxBytes`; records that alone exceed it are not stored.
   */
  append(lines: readonly string[]): Promise<AppendOutcome> {
    return this.exclusive(() => this.appendNow(lines));
  }

  /** Runs spool mutations one at a time (two failed batches may be spooled concurrently). */
  private exclusive<T>(task: () => Promise<T>): Promise<T> {
    const run = this.queue.then(task, task);
    this.queue = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  private async appendNow(lines: readonly string[]): Promise<AppendOutcome> {
    const chunk = lines.join('\n') + '\n';
    const size = Buffer.byteLength(chunk);
    const dropped: AppendOutcome['dropped'] = [];
    if (lines.length === 0) return { stored: true, dropped };
    if (size > this.options.maxBytes) return { stored: false, dropped };
    while (this.totalBytes + size > this.options.maxBytes && this.segments.length > 0) {
      const oldest = this.segments[0]!;
      if (this.current?.segment === oldest) await this.seal();
      dropped.push({ segment: oldest, ...(await this.drop(oldest)) });
    }
    if (this.current && this.current.segment.bytes > 0 && this.current.segment.bytes + size > this.options.segmentBytes) await this.seal();
    if (!this.current) {
      const seq = this.nextSeq++;
      const file = join(this.dir, `spool-${pad(seq)}.ndjson`);
      const handle = await openExclusive(file);
      await fsyncDir(this.dir).catch(async (error: unknown) => {
        await handle.close();
        throw error;
      });
      const segment: SpoolSegment = { seq, file, bytes: 0, records: 0, own: true };
      this.segments.push(segment);
      this.current = { segment, handle };
    }
    const { segment, handle } = this.current;
    await handle.appendFile(chunk);
    await handle.sync();
    segment.bytes += size;
    segment.records = (segment.records ?? 0) + lines.length;
    this.totalBytes += size;
    return { stored: true, dropped };
  }

  /** Reads a segment's records in order; a torn last record is ignored, unreadable lines are counted. */
  async read(segment: SpoolSegment): Promise<{ records: SpoolRecord[]; corrupt: number }> {
    const text = await readFileNoFollow(segment.file);
    const lines = text.split('\n');
    // After the last "\n": empty, or a record torn by a crash mid-append (never acknowledged, so never counted
    // as spooled). Anything else there is damage, and counts as unreadable like a damaged line.
    const tail = lines.pop()!;
    const records: SpoolRecord[] = [];
    let corrupt = tail !== '' && !tail.startsWith('{"index":') ? 1 : 0;
    for (const line of lines) {
      try {
        const record = JSON.parse(line) as SpoolRecord;
        if (typeof record?.index !== 'string' || typeof record.id !== 'string' || typeof record.doc !== 'object' || record.doc === null) {
          throw new Error('not a spool record');
        }
        records.push(record);
      } catch {
        corrupt++;
      }
    }
    segment.records = lines.length;
    return { records, corrupt };
  }

  /** Deletes a delivered segment. */
  remove(segment: SpoolSegment): Promise<void> {
    return this.exclusive(() => this.removeNow(segment));
  }

  private async removeNow(segment: SpoolSegment): Promise<void> {
    if (this.current?.segment === segment) await this.seal();
    await unlink(segment.file).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw error;
    });
    await fsyncDir(this.dir);
    this.forget(segment);
  }

  /** Deletes a delivered drop report. */
  async removeReport(report: DropReport): Promise<void> {
    const file = join(this.dir, `dropped-${report.id.split(':').pop()}.json`);
    await unlink(file).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw error;
    });
    await fsyncDir(this.dir);
    this.reports = this.reports.filter((r) => r.id !== report.id);
  }

  /** Closes the segment being appended to and releases the lock. */
  close(): Promise<void> {
    return this.exclusive(async () => {
      await this.seal();
      await this.locked?.release();
      this.locked = undefined;
    });
  }

  private forget(segment: SpoolSegment): void {
    const index = this.segments.indexOf(segment);
    if (index !== -1) {
      this.segments.splice(index, 1);
      this.totalBytes -= segment.bytes;
    }
  }

  /** Drops a segment for room and leaves a report of it, to be delivered as an error document. */
  private async drop(segment: SpoolSegment): Promise<{ docs: number; currentState: number }> {
    let docs = segment.records;
    let currentState = 0;
    let first: SpoolRecord | undefined;
    let last: SpoolRecord | undefined;
    try {
      const { records } = await this.read(segment);
      docs = segment.records;
      // Current-state writes (gather-latest, gather-hosts: records with an `op`) count in no total of a run.
      currentState = records.filter((r) => (r as { op?: unknown }).op !== undefined).length;
      first = records[0];
      last = records[records.length - 1];
    } catch {
      docs ??= 0;
    }
    const seq = this.nextSeq++;
    const name = `spool-${pad(segment.seq)}.ndjson`;
    const doc = first?.doc;
    const report: DropReport = {
      id: `spool-dropped:${String((doc?.host as { hostname?: unknown } | undefined)?.hostname ?? 'unknown')}:${pad(seq)}`,
      segment: name,
      docs: docs ?? 0,
      bytes: segment.bytes,
      ...(first ? { first_id: first.id } : {}),
      ...(last ? { last_id: last.id } : {}),
      ...(doc ? { sample: { run_id: doc.run_id, host: doc.host, agent: doc.agent } } : {}),
      at: this.now().toISOString(),
    };
    await writeFileAtomic(join(this.dir, `dropped-${pad(seq)}.json`), JSON.stringify(report));
    await unlink(segment.file).catch(() => undefined);
    await fsyncDir(this.dir);
    this.forget(segment);
    this.reports.push(report);
    return { docs: report.docs, currentState };
  }
}
