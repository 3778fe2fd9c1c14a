// The settings of issue 11: results mode, snapshot interval, host id (file < env < flag, validated).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { generateSigningKeyPair } from '@gather/checks-bundler';
import { ConfigError } from '@gather/core';
import { loadConfig } from '../src/config.js';
import { tempDir } from './_helpers.js';

const dir = tempDir('gather-config-');
const publicKey = join(dir, 'key.pub.pem');
writeFileSync(publicKey, generateSigningKeyPair().publicKeyPem);
const base = { GATHER_BUNDLE: '/b.tar', GATHER_PUBLIC_KEY: publicKey };

describe('results settings', () => {
  it('default to differential with Elasticsearch and snapshot for NDJSON; flags override the environment', () => {
    const es = loadConfig({ env: { ...base, GATHER_EXPORTER: 'elasticsearch', GATHER_ES_URL: 'http://127.0.0.1:9200' }, uid: 0 });
    expect(es).toMatchObject({ results: 'differential', snapshotIntervalSec: 86_400, hostId: undefined });
    expect(loadConfig({ env: base, uid: 0 }).results).toBe('snapshot');
    const set = loadConfig({
      env: { ...base, GATHER_RESULTS: 'snapshot', GATHER_SNAPSHOT_INTERVAL_SEC: '3600', GATHER_HOST_ID: 'env-id' },
      flags: { results: 'differential', 'host-id': 'flag-id' },
      uid: 0,
    });
    expect(set).toMatchObject({ results: 'differential', snapshotIntervalSec: 3600, hostId: 'flag-id' });
  });

  it('reject an unknown mode and an interval under a minute, naming the setting', () => {
    let problems: string[] = [];
    try {
      loadConfig({ env: { ...base, GATHER_RESULTS: 'diff', GATHER_SNAPSHOT_INTERVAL_SEC: '5' }, uid: 0 });
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      problems = (error as ConfigError).problems;
    }
    expect(problems).toEqual([
      'results: GATHER_RESULTS must be one of differential, snapshot (got "diff")',
      'snapshotIntervalSec: GATHER_SNAPSHOT_INTERVAL_SEC must be a number of seconds >= 60 (got "5")',
    ]);
  });
});
