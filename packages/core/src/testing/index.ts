/**
 * @gather/core/testing: what an adapter's own tests need to prove it keeps core's contracts — the Fetcher
 * and Exporter contract suites (vitest, an optional peer dependency) with their sample documents, and
 * inline bundle builders (signed, tamperable) that need no bundler.
 */
export { exporterContract, sampleError, sampleResult, sampleRunSummary, type ExporterHarness } from './exporter-contract.js';
export { fetcherContract, type FetcherHarness } from './fetcher-contract.js';
export { makeBundle, makeKeys, runnerFor, tar, type BundleSpec, type Keys, type TarEntry } from './bundles.js';
