/**
 * Index setup: the composable templates of the daily indices (and of the current-state indices), installed
 * once per exporter before its first document; Elasticsearch creates each day's index on first write.
 */
import type { ExportContext } from './context.js';
import { dailyTemplate } from './daily.js';
import { currentStateTemplate } from './latest.js';
import { templateName } from './mapping.js';

export interface TemplateOptions {
  installTemplates: boolean;
  indexSettings: Record<string, unknown> | undefined;
  currentState: boolean;
}

export class Templates {
  private ready = false;

  constructor(
    private readonly ctx: ExportContext,
    private readonly options: TemplateOptions,
  ) {}

  /** Installs the templates (once); false when Elasticsearch cannot take documents now (the failure is recorded). */
  async ensureReady(): Promise<boolean> {
    const { ctx } = this;
    if (this.ready) return true;
    if (ctx.transport.stopped) return false;
    const { resultsIndex, errorsIndex, runsIndex } = ctx.settings;
    if (!this.options.installTemplates) {
      for (const index of [resultsIndex, errorsIndex, runsIndex]) ctx.plainIndices.add(index);
      this.ready = true;
      return true;
    }
    try {
      for (const [index, body] of await this.wanted()) {
        // Read first: thousands of agents start runs, and a template PUT is a cluster state update.
        const installed = await ctx.transport.request<{ index_templates?: Array<{ index_template?: Record<string, unknown> }> }>(
          { method: 'GET', path: `/_index_template/${templateName(index)}` },
          { ignore: [404] },
        );
        const current = installed.index_templates?.[0]?.index_template;
        const upToDate = (current?._meta as { hash?: string } | undefined)?.hash === (body._meta as { hash: string }).hash;
        if (!upToDate) await ctx.transport.request({ method: 'PUT', path: `/_index_template/${templateName(index)}`, body });
      }
      this.ready = true;
      return true;
    } catch (error) {
      if (!ctx.transport.stopped) ctx.outage.fail(error, 'installing the index templates');
      return false;
    }
  }

  /** The template body of each index, by index name. */
  private async wanted(): Promise<Array<[string, Record<string, unknown>]>> {
    const { ctx, options } = this;
    const { resultsIndex, errorsIndex, runsIndex, latestIndex, hostsIndex, templatePriority: priority } = ctx.settings;
    const settings = options.indexSettings ? { settings: options.indexSettings } : {};
    const templates: Array<[string, Record<string, unknown>]> = [];
    for (const [index, kind] of [
      [resultsIndex, 'results'],
      [errorsIndex, 'errors'],
      [runsIndex, 'runs'],
    ] as const) {
      // An index of the plain name (an older gather wrote there) keeps its data; the alias is left out.
      const plain = await ctx.transport.request<Record<string, unknown>>({ method: 'GET', path: `/${index}/_settings` }, { ignore: [404] });
      const alias = !Object.keys(plain ?? {}).includes(index);
      if (alias) ctx.plainIndices.add(index);
      templates.push([index, dailyTemplate({ index, kind, priority, alias, ...settings })]);
    }
    if (options.currentState) {
      templates.push([latestIndex, currentStateTemplate({ index: latestIndex, kind: 'latest', priority, ...settings })]);
      templates.push([hostsIndex, currentStateTemplate({ index: hostsIndex, kind: 'hosts', priority, ...settings })]);
    }
    return templates;
  }
}
