import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Writable } from 'node:stream';
import { ConfigError, ExportError, FetchError } from './errors.js';
import type { ErrorDocument, ExportSummary, Exporter, Fetcher, GatherDocument, ResultDocument, RunSummaryDocument } from './types.js';

export interface FileFetcherOptions {
  /** Path of a bundle built by `gather-bundle build`. */
  path: string;
}

/** A fetcher for a bundle already on disk (the embedded default, and air-gapped hosts). */
export function createFileFetcher(options: FileFetcherOptions): Fetcher {
  if (!options?.path) throw new ConfigError('[file fetcher] Missing option "path". Pass the bundle path (--bundle).');
  const path = resolve(options.path);
  return {
    name: 'file',
    async fetch() {
      let info;
      try {
        info = await stat(path);
      } catch (cause) {
        const code = (cause as NodeJS.ErrnoException).code;
        const hint = code === 'ENOENT' ? 'Check the path, or build one with "gather-bundle build".' : `(${code})`;
        throw new FetchError(`Bundle not found at ${path}. ${hint}`, { cause });
      }
      if (!info.isFile()) throw new FetchError(`Bundle path ${path} is not a regular file.`);
      return { path, unchanged: false, bytesTransferred: 0, source: `file:${path}` };
    },
  };
}

/** Writes every document as one JSON line. */
class NdjsonExporter implements Exporter {
  readonly name: string;
  private delivered = 0;
  private failure: Error | undefined;

  constructor(
    name: string,
    private readonly stream: Writable,
    private readonly onClose: () => Promise<void>,
  ) {
    this.name = name;
    stream.on('error', (error) => {
      this.failure = error;
    });
  }

  private async write(documents: ReadonlyArray<GatherDocument | RunSummaryDocument>): Promise<void> {
    this.throwIfFailed();
    if (documents.length === 0) return;
    const text = documents.map((doc) => JSON.stringify(doc)).join('\n') + '\n';
    if (!this.stream.write(text)) await this.drained();
    this.throwIfFailed();
    this.delivered += documents.length;
  }

  private drained(): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        this.stream.off('drain', done);
        this.stream.off('error', done);
        resolve();
      };
      this.stream.on('drain', done);
      this.stream.on('error', done);
    });
  }

  private throwIfFailed(): void {
    if (this.failure) {
      throw new ExportError(`[${this.name} exporter] Writing NDJSON failed: ${this.failure.message}.`, { cause: this.failure });
    }
  }

  exportResults(results: readonly ResultDocument[]) {
    return this.write(results);
  }

  exportErrors(errors: readonly ErrorDocument[]) {
    return this.write(errors);
  }

  exportRunSummary(summary: RunSummaryDocument) {
    return this.write([summary]);
  }

  async flush(): Promise<ExportSummary> {
    this.throwIfFailed();
    return { delivered: this.delivered, spooled: 0, failed: 0 };
  }

  async close(): Promise<ExportSummary> {
    const summary = await this.flush();
    try {
      await this.onClose();
    } catch (error) {
      // The file could not be opened (its error can come only now, while closing), written or synced.
      this.failure ??= error as Error;
    }
    this.throwIfFailed();
    return summary;
  }
}

export interface FileExporterOptions {
  /** NDJSON output file. */
  path: string;
  /** Append instead of truncating (the daemon keeps one file). Default false. */
  append?: boolean;
}

/** Writes results and error records as NDJSON to a file (mode 0600: results describe the host). */
export function createFileExporter(options: FileExporterOptions): Exporter {
  if (!options?.path) throw new ConfigError('[file exporter] Missing option "path". Pass --out <file> or set GATHER_OUT.');
  const path = resolve(options.path);
  const stream = createWriteStream(path, { flags: options.append ? 'a' : 'w', mode: 0o600 });
  return new NdjsonExporter('file', stream, async () => {
    stream.end();
    await once(stream, 'finish');
    // fsync so a power cut right after the run does not lose results the summary counted as delivered.
    const handle = await open(path, 'r');
    try {
      await handle.sync();
    } catch (error) {
      // Character devices such as /dev/null cannot be synced; there is nothing to lose there.
      if ((error as NodeJS.ErrnoException).code !== 'EINVAL') throw error;
    } finally {
      await handle.close();
    }
  });
}

/** Writes results and error records as NDJSON to a stream, stdout by default. */
export function createStdoutExporter(options: { stream?: Writable } = {}): Exporter {
  const stream = options.stream ?? process.stdout;
  return new NdjsonExporter('stdout', stream, async () => {});
}

/** Keeps documents in memory: for tests and for embedding gather in another program. */
export interface MemoryExporter extends Exporter {
  readonly results: ResultDocument[];
  readonly errors: ErrorDocument[];
  readonly runs: RunSummaryDocument[];
}

export function createMemoryExporter(): MemoryExporter {
  const results: ResultDocument[] = [];
  const errors: ErrorDocument[] = [];
  const runs: RunSummaryDocument[] = [];
  const summary = () => ({ delivered: results.length + errors.length + runs.length, spooled: 0, failed: 0 });
  return {
    name: 'memory',
    results,
    errors,
    runs,
    async exportResults(docs) {
      results.push(...docs);
    },
    async exportErrors(docs) {
      errors.push(...docs);
    },
    async exportRunSummary(doc) {
      runs.push(doc);
    },
    async flush() {
      return summary();
    },
    async close() {
      return summary();
    },
  };
}
