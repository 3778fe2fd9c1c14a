// The second bundle of the single executable (a SEA asset, see adapters.mjs): both adapters, without
// @gather/core (the executable passes its own).
export * as s3 from '../../packages/fetcher-s3/dist/index.js';
export * as es from '../../packages/exporter-es/dist/index.js';
