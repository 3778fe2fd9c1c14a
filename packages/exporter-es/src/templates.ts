/**
 * Index setup: the composable templates of the daily indices (and of the current-state indices), installed
 * once per exporter before its first document; Elasticsearch creates each day's index on first write.
 *
 * A fleet of one-shot runs would otherwise check every template on every run (a `GET _settings` per daily
 * index and a `GET _index_template` per template). So what was installed is remembered in the state
 * directory (`es-templates.json`, keyed by the mapping version and the settings that shape the templates):
 * a later run with the same settings makes one request that reads the installed templates' hashes, and
 * installs again only when one is missing (an operator deleted it) or differs.
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { readFileNoFollow, writeFileAtomic } from '@gather/core';
import type { ExportContext } from './context.js';
import { dailyTemplate } from './daily.js';
import { currentStateTemplate } from './latest.js';
import { MAPPING_VERSION, templateName } from './mapping.js';

export interface TemplateOptions {
  installTemplates: boolean;
  /** Where `es-templates.json` is kept; none: every exporter checks every template. */
  stateDir: string | undefined;
  indexSettings: Record<string, unknown> | undefined;
  currentState: boolean;
}

/** What `templates.json` remembers: for which settings, and which daily indices got the alias. */
interface InstalledNote {
  key: string;
  aliased: string[];
}

const NOTE = 'es-templates.json';

export class Templates {
  private ready = false;
  private readonly key: string;

  constructor(
    private readonly ctx: ExportContext,
    private readonly options: TemplateOptions,
  ) {
    const { where, resultsIndex, errorsIndex, runsIndex, latestIndex, hostsIndex, templatePriority } = ctx.settings;
    const { indexSettings, currentState } = options;
    const shape = {
      MAPPING_VERSION,
      where,
      resultsIndex,
      errorsIndex,
      runsIndex,
      latestIndex,
      hostsIndex,
      templatePriority,
      indexSettings,
      currentState,
    };
    this.key = createHash('sha256').update(JSON.stringify(shape)).digest('hex').slice(0, 32);
  }

  /** Installs the templates (once); false when Elasticsearch cannot take documents now (the failure is recorded). */
  async ensureReady(): Promise<boolean> {
    const { ctx } = this;
    if (this.ready) return true;
    if (ctx.transport.stopped) return false;
    if (!this.options.installTemplates) {
      for (const index of this.dailyIndices()) ctx.plainIndices.add(index);
      this.ready = true;
      return true;
    }
    try {
      const note = await this.readNote();
      const aliased = note ? new Set(note.aliased) : await this.aliasedIndices();
      if (!note || !(await this.allInstalled(aliased))) {
        const fresh = note ? await this.aliasedIndices() : aliased;
        await this.install(fresh);
        await this.writeNote(fresh);
        for (const index of fresh) ctx.plainIndices.add(index);
      } else for (const index of aliased) ctx.plainIndices.add(index);
      this.ready = true;
      return true;
    } catch (error) {
      if (!ctx.transport.stopped) ctx.outage.fail(error, 'installing the index templates');
      return false;
    }
  }

  private dailyIndices(): string[] {
    const { resultsIndex, errorsIndex, runsIndex } = this.ctx.settings;
    return [resultsIndex, errorsIndex, runsIndex];
  }

  /**
   * The daily indices that get the alias of their plain name: all but those of which an index of the plain
   * name exists (an older gather wrote there; it keeps its data and the alias is left out).
   */
  private async aliasedIndices(): Promise<Set<string>> {
    const aliased = new Set<string>();
    for (const index of this.dailyIndices()) {
      const plain = await this.ctx.transport.request<Record<string, unknown>>(
        { method: 'GET', path: `/${index}/_settings` },
        { ignore: [404] },
      );
      if (!Object.keys(plain ?? {}).includes(index)) aliased.add(index);
    }
    return aliased;
  }

  /** The template body of each index, by index name. */
  private bodies(aliased: Set<string>): Array<[string, Record<string, unknown>]> {
    const { resultsIndex, errorsIndex, runsIndex, latestIndex, hostsIndex, templatePriority: priority } = this.ctx.settings;
    const settings = this.options.indexSettings ? { settings: this.options.indexSettings } : {};
    const templates: Array<[string, Record<string, unknown>]> = [];
    for (const [index, kind] of [
      [resultsIndex, 'results'],
      [errorsIndex, 'errors'],
      [runsIndex, 'runs'],
    ] as const) {
      templates.push([index, dailyTemplate({ index, kind, priority, alias: aliased.has(index), ...settings })]);
    }
    if (this.options.currentState) {
      templates.push([latestIndex, currentStateTemplate({ index: latestIndex, kind: 'latest', priority, ...settings })]);
      templates.push([hostsIndex, currentStateTemplate({ index: hostsIndex, kind: 'hosts', priority, ...settings })]);
    }
    return templates;
  }

  /** One request: every template this exporter needs is installed with the hash of its body. */
  private async allInstalled(aliased: Set<string>): Promise<boolean> {
    const installed = await this.ctx.transport.request<{
      index_templates?: Array<{ name?: string; index_template?: { _meta?: { hash?: string } } }>;
    }>(
      {
        method: 'GET',
        path: `/_index_template/*${templateName('')}`,
        querystring: { filter_path: 'index_templates.name,index_templates.index_template._meta.hash' },
      },
      { ignore: [404] },
    );
    const hashes = new Map((installed.index_templates ?? []).map((t) => [t.name, t.index_template?._meta?.hash]));
    return this.bodies(aliased).every(([index, body]) => hashes.get(templateName(index)) === (body._meta as { hash: string }).hash);
  }

  private async install(aliased: Set<string>): Promise<void> {
    for (const [index, body] of this.bodies(aliased)) {
      // Read first: thousands of agents start runs, and a template PUT is a cluster state update.
      const installed = await this.ctx.transport.request<{ index_templates?: Array<{ index_template?: Record<string, unknown> }> }>(
        { method: 'GET', path: `/_index_template/${templateName(index)}` },
        { ignore: [404] },
      );
      const current = installed.index_templates?.[0]?.index_template;
      const upToDate = (current?._meta as { hash?: string } | undefined)?.hash === (body._meta as { hash: string }).hash;
      if (!upToDate) await this.ctx.transport.request({ method: 'PUT', path: `/_index_template/${templateName(index)}`, body });
    }
  }

  /** The note of an earlier exporter with the same settings; none without a stateDir or when unreadable. */
  private async readNote(): Promise<InstalledNote | undefined> {
    const { stateDir } = this.options;
    if (!stateDir) return undefined;
    try {
      const note = JSON.parse(await readFileNoFollow(join(stateDir, NOTE))) as Partial<InstalledNote>;
      return note.key === this.key && Array.isArray(note.aliased)
        ? { key: note.key, aliased: note.aliased.filter((i) => typeof i === 'string') }
        : undefined;
    } catch {
      return undefined;
    }
  }

  private async writeNote(aliased: Set<string>): Promise<void> {
    const { stateDir } = this.options;
    if (!stateDir) return;
    const note: InstalledNote = { key: this.key, aliased: [...aliased] };
    // Only a saving: an exporter that cannot write it checks the templates again next time.
    await writeFileAtomic(join(stateDir, NOTE), JSON.stringify(note)).catch(() => undefined);
  }
}
