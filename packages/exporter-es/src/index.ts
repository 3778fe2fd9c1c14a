export { createEsExporter, type EsExporter, type EsExportSummary } from './exporter.js';
export type { EsAuth, EsExporterOptions, EsLogLevel } from './options.js';
export { boundedId, DocumentIds } from './ids.js';
export {
  currentStateTemplate,
  hostEntry,
  hostKey,
  latestEntry,
  staleLatestQuery,
  HOSTS_MAPPINGS,
  LATEST_MAPPINGS,
  type BulkOp,
  type CurrentStateEntry,
  type SnapshotMark,
} from './latest.js';
export { dailyIndex, dailyPattern, dailyTemplate, dayOf, dayOfIndex, expiredIndices, type DailyTemplateOptions } from './daily.js';
export {
  ERRORS_MAPPINGS,
  RESULTS_MAPPINGS,
  RUNS_MAPPINGS,
  MAPPING_VERSION,
  indexTemplate,
  templateName,
  typedValueFields,
  resultSource,
} from './mapping.js';
export {
  Spool,
  SpoolLockedError,
  type SpoolOptions,
  type SpoolRecord,
  type SpoolSegment,
  type DropReport,
  type AppendOutcome,
} from './spool.js';
