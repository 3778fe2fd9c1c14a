// @gather/exporter-es: the Elasticsearch exporter, and what operators and gather-fleet read its indices by
// (daily index names, retention, the templates' mappings for installing them by hand, the spool's format).
export { createEsExporter, type EsExporter, type EsExportSummary } from './exporter.js';
export type { EsAuth, EsExporterOptions, EsLogLevel } from './options.js';
export { dailyIndex, dailyPattern, expiredIndices } from './daily.js';
export {
  ERRORS_MAPPINGS,
  RESULTS_MAPPINGS,
  RUNS_MAPPINGS,
  MAPPING_VERSION,
  indexTemplate,
  templateName,
  resultSource,
} from './mapping.js';
export { HOSTS_MAPPINGS, LATEST_MAPPINGS } from './latest.js';
export {
  Spool,
  type SpoolOptions,
  type SpoolRecord,
  type SpoolSegment,
  type DropReport,
  type AppendOutcome,
} from './spool.js';
