// How S3 and network failures are classified (retry or not) and explained. The error objects have the shape
// the AWS SDK v3 gives them (name, $metadata.httpStatusCode, Code); the real server is exercised in the
// integration tests.
import { describe, expect, it } from 'vitest';
import {
  IntegrityError,
  TruncatedBodyError,
  describeS3Error,
  isNotFound,
  isNotModified,
  isTransient,
  type ErrorContext,
} from '../src/_errors.js';
import { RetriesExhausted } from '@gather/core';

function s3Error(name: string, status: number, message = 'x'): Error {
  return Object.assign(new Error(message), {
    name,
    Code: name,
    $fault: status >= 500 ? 'server' : 'client',
    $metadata: { httpStatusCode: status },
  });
}

function networkError(code: string): Error {
  return Object.assign(new Error(`connect ${code} 127.0.0.1:9`), { code });
}

const SECRET = 'very-secret-access-key-1234';
const ctx: ErrorContext = {
  action: 'fetch',
  bucket: 'bundles',
  key: 'gather/prod/latest',
  endpoint: 'https://s3.example.com',
  credentialsSource: 'credentials passed in options',
  secrets: [SECRET],
};

describe('which failures are retried', () => {
  it.each([
    ['503 SlowDown', s3Error('SlowDown', 503)],
    ['500 InternalError', s3Error('InternalError', 500)],
    ['429 throttling', s3Error('TooManyRequests', 429)],
    ['400 RequestTimeout', s3Error('RequestTimeout', 400)],
    ['connection reset', networkError('ECONNRESET')],
    ['connection refused', networkError('ECONNREFUSED')],
    ['a body cut short', new TruncatedBodyError(10, 20)],
    ['a network error wrapped as cause', new Error('socket hang up', { cause: networkError('EPIPE') })],
  ])('retries %s', (_name, error) => {
    expect(isTransient(error)).toBe(true);
  });

  it.each([
    ['404 NoSuchKey', s3Error('NoSuchKey', 404)],
    ['403 AccessDenied', s3Error('AccessDenied', 403)],
    ['403 SignatureDoesNotMatch', s3Error('SignatureDoesNotMatch', 403)],
    ['412 PreconditionFailed', s3Error('PreconditionFailed', 412)],
    ['a sha256 mismatch', new IntegrityError('bad')],
  ])('does not retry %s', (_name, error) => {
    expect(isTransient(error)).toBe(false);
  });

  it('recognises 304 and 404', () => {
    expect(isNotModified(s3Error('NotModified', 304))).toBe(true);
    expect(isNotFound(s3Error('NoSuchKey', 404))).toBe(true);
    expect(isNotFound(s3Error('NotFound', 404))).toBe(true);
    expect(isNotFound(s3Error('NoSuchBucket', 404))).toBe(false);
  });
});

describe('messages name bucket and key and say what to do', () => {
  it('no such bucket', () => {
    expect(describeS3Error(s3Error('NoSuchBucket', 404), ctx)).toBe(
      'Bucket "bundles" does not exist at https://s3.example.com (while trying to fetch s3://bundles/gather/prod/latest). ' +
        'Check the bucket name (option "bucket" / GATHER_S3_BUCKET), the endpoint and the region.',
    );
  });

  it("no such key, with the caller's hint", () => {
    expect(describeS3Error(s3Error('NoSuchKey', 404), { ...ctx, notFoundHint: 'Publish one.' })).toBe(
      'No object s3://bundles/gather/prod/latest at https://s3.example.com. Publish one.',
    );
  });

  it('access denied names the credentials source and the permission, never the secret', () => {
    const message = describeS3Error(s3Error('AccessDenied', 403, `denied for ${SECRET}`), ctx);
    expect(message).toContain(
      'Access denied to s3://bundles/gather/prod/latest (S3 said AccessDenied) with credentials from credentials passed in options.',
    );
    expect(message).toContain('s3:GetObject on arn:aws:s3:::bundles/gather/prod/latest');
    expect(message).not.toContain(SECRET);
  });

  it('unknown access key / wrong secret get specific advice', () => {
    expect(describeS3Error(s3Error('InvalidAccessKeyId', 403), ctx)).toContain('does not know this access key ID');
    expect(describeS3Error(s3Error('SignatureDoesNotMatch', 403), ctx)).toContain('secret access key does not match');
  });

  it('endpoint unreachable, after the retries', () => {
    expect(describeS3Error(new RetriesExhausted(networkError('ECONNREFUSED'), 3), ctx)).toBe(
      'Cannot reach the S3 endpoint https://s3.example.com (ECONNREFUSED) to fetch s3://bundles/gather/prod/latest after 3 attempts. ' +
        'Check the endpoint (option "endpoint" / GATHER_S3_ENDPOINT), DNS, firewall and proxy settings.',
    );
  });

  it('server errors after the retries', () => {
    const message = describeS3Error(new RetriesExhausted(s3Error('SlowDown', 503, 'Please reduce your request rate.'), 3), ctx);
    expect(message).toBe(
      'S3 kept failing for s3://bundles/gather/prod/latest at https://s3.example.com: HTTP 503 SlowDown after 3 attempts. ' +
        'Please reduce your request rate. Try again later; if it persists, check the service health.',
    );
  });

  it('redacts the secret wherever it appears, even in an unexpected error', () => {
    const message = describeS3Error(new Error(`weird failure with ${SECRET} inside`), ctx);
    expect(message).toContain('[redacted]');
    expect(message).not.toContain(SECRET);
  });
});
