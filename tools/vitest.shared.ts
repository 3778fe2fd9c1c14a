import { defineConfig, type ViteUserConfig } from 'vitest/config';

/**
 * The one vitest configuration of every package. Packages with integration tests get two projects:
 * `unit` needs no services; `integration` (test/**\/*.integration.test.ts) runs against the real
 * Elasticsearch / S3 servers that tools/vitest-services.ts starts, or those named by GATHER_ES_URL /
 * GATHER_S3_* when set. `vitest run --project unit` runs only the unit tests and starts nothing;
 * GATHER_TEST_SCOPE=unit does the same for every package at once (`.ci/run` on the older Node lines).
 * Every run stages its files in a temp dir of its own, removed at its end (tools/vitest-temp.ts).
 */
const temp = new URL('./vitest-temp.ts', import.meta.url).pathname;

export function gatherTestConfig(options: { services?: boolean } = {}): ViteUserConfig {
  const unitOnly = process.env.GATHER_TEST_SCOPE === 'unit';
  if (unitOnly && options.services) {
    return defineConfig({
      test: {
        testTimeout: 30_000,
        globalSetup: [temp],
        include: ['test/**/*.test.ts'],
        exclude: ['test/**/*.integration.test.ts', '**/node_modules/**'],
      },
    });
  }
  if (!options.services) return defineConfig({ test: { include: ['test/**/*.test.ts'], testTimeout: 30_000, globalSetup: [temp] } });
  return defineConfig({
    test: {
      testTimeout: 30_000,
      projects: [
        {
          extends: true,
          test: {
            name: 'unit',
            globalSetup: [temp],
            include: ['test/**/*.test.ts'],
            exclude: ['test/**/*.integration.test.ts', '**/node_modules/**'],
          },
        },
        {
          extends: true,
          test: {
            name: 'integration',
            include: ['test/**/*.integration.test.ts'],
            globalSetup: [temp, new URL('./vitest-services.ts', import.meta.url).pathname],
            testTimeout: 120_000,
            hookTimeout: 120_000,
          },
        },
      ],
    },
  });
}
