import { ConfigError } from '@gather/core';
import { CHECKSUM_SETTINGS, SCOPE, type ChecksumSetting, type S3ConnectionOptions } from './client.js';

export interface S3EnvOptions extends S3ConnectionOptions {
  bucket?: string;
  prefix?: string;
  key?: string;
}

/**
 * Options from GATHER_S3_* variables, for command lines (explicit flags win over these):
 * GATHER_S3_BUCKET, GATHER_S3_PREFIX, GATHER_S3_KEY, GATHER_S3_ENDPOINT, GATHER_S3_REGION,
 * GATHER_S3_FORCE_PATH_STYLE (true/false), GATHER_S3_CHECKSUMS (default/when-required), and
 * GATHER_S3_ACCESS_KEY_ID + GATHER_S3_SECRET_ACCESS_KEY (+ GATHER_S3_SESSION_TOKEN) when both are set;
 * otherwise credentials come from the AWS SDK default chain (AWS_* variables, profile, instance role).
 */
export function s3OptionsFromEnv(env: Record<string, string | undefined> = process.env): S3EnvOptions {
  const out: S3EnvOptions = {};
  const get = (name: string) => {
    const value = env[name]?.trim();
    return value ? value : undefined;
  };
  const bucket = get('GATHER_S3_BUCKET');
  if (bucket) out.bucket = bucket;
  const prefix = get('GATHER_S3_PREFIX');
  if (prefix) out.prefix = prefix;
  const key = get('GATHER_S3_KEY');
  if (key) out.key = key;
  const endpoint = get('GATHER_S3_ENDPOINT');
  if (endpoint) out.endpoint = endpoint;
  const region = get('GATHER_S3_REGION');
  if (region) out.region = region;
  const pathStyle = get('GATHER_S3_FORCE_PATH_STYLE');
  if (pathStyle) {
    if (!/^(true|false|1|0)$/i.test(pathStyle)) {
      throw new ConfigError(`Invalid GATHER_S3_FORCE_PATH_STYLE ${JSON.stringify(pathStyle)}: use true or false.`, { scope: SCOPE });
    }
    out.forcePathStyle = /^(true|1)$/i.test(pathStyle);
  }
  const checksums = get('GATHER_S3_CHECKSUMS');
  if (checksums) {
    if (!CHECKSUM_SETTINGS.includes(checksums as ChecksumSetting)) {
      throw new ConfigError(`Invalid GATHER_S3_CHECKSUMS ${JSON.stringify(checksums)}: use "default" or "when-required".`, {
        scope: SCOPE,
      });
    }
    out.checksums = checksums as ChecksumSetting;
  }
  const accessKeyId = get('GATHER_S3_ACCESS_KEY_ID');
  const secretAccessKey = get('GATHER_S3_SECRET_ACCESS_KEY');
  if (accessKeyId && secretAccessKey) {
    const sessionToken = get('GATHER_S3_SESSION_TOKEN');
    out.credentials = { accessKeyId, secretAccessKey, ...(sessionToken ? { sessionToken } : {}) };
    out.credentialsSource = 'environment variables GATHER_S3_ACCESS_KEY_ID / GATHER_S3_SECRET_ACCESS_KEY';
  }
  return out;
}
