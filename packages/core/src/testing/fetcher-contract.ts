// The contract every Fetcher must meet, run against each adapter (file here, S3 in @gather/fetcher-s3).
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Fetcher } from '../types.js';

export interface FetcherHarness {
  /** A fetcher whose source currently holds `bundle`. */
  withBundle(bundle: Buffer): Promise<Fetcher> | Fetcher;
  /** A fetcher whose source has nothing to fetch. */
  missing(): Promise<Fetcher> | Fetcher;
}

const tempDir = () => mkdtempSync(join(tmpdir(), 'gather-contract-'));

export function fetcherContract(name: string, harness: FetcherHarness): void {
  describe(`Fetcher contract: ${name}`, () => {
    it('puts the exact bundle bytes at the returned path', async () => {
      const bundle = Buffer.from(`bundle-${name}-${Date.now()}`);
      const fetcher = await harness.withBundle(bundle);
      const result = await fetcher.fetch({ dir: tempDir() });
      expect(readFileSync(result.path)).toEqual(bundle);
      expect(statSync(result.path).isFile()).toBe(true);
      expect(result.source).toBeTruthy();
      expect(result.source).not.toMatch(/secret/i);
      await fetcher.close?.();
    });

    it('fails with a FetchError naming the source when there is no bundle', async () => {
      const fetcher = await harness.missing();
      await expect(fetcher.fetch({ dir: tempDir() })).rejects.toMatchObject({ name: 'FetchError', code: 'GATHER_FETCH' });
      await fetcher.close?.();
    });
  });
}
