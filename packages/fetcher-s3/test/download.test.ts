// The verified download on its own, with an in-memory GET in place of S3 (the real server is exercised in
// fetcher.integration.test.ts): what is checked, and that nothing but a verified bundle is left behind.
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { GetObjectCommandOutput } from '@aws-sdk/client-s3';
import { afterEach, describe, expect, it } from 'vitest';
import { IntegrityError, TruncatedBodyError } from '../src/_errors.js';
import type { ConditionalGet } from '../src/conditional-get.js';
import { downloadVerified, type DownloadRequest } from '../src/download.js';

const bytes = Buffer.from('a bundle, or what stands for one here');
const sha256 = createHash('sha256').update(bytes).digest('hex');
const md5 = createHash('md5').update(bytes).digest('hex');
const dirs: string[] = [];

afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A GET answering with `response` (body: `bytes`), or 304 when the ETag matches. */
function answer(response: Partial<GetObjectCommandOutput> = {}, body: Buffer = bytes): ConditionalGet {
  return async (request, consume) => {
    request.counter.requests++;
    if (request.ifNoneMatch && request.ifNoneMatch === response.ETag) return false;
    await consume({ Body: Readable.from([body]), ContentLength: body.length, $metadata: {}, ...response } as GetObjectCommandOutput);
    return true;
  };
}

function request(overrides: Partial<DownloadRequest> = {}): DownloadRequest {
  const targetDir = mkdtempSync(join(tmpdir(), 'gather-s3-download-'));
  dirs.push(targetDir);
  return {
    key: 'p/1.tar',
    ifNoneMatch: undefined,
    expected: { what: 'pointer p/latest' },
    targetDir,
    fileName: () => 'bundle.tar',
    durable: false,
    signal: new AbortController().signal,
    counter: { requests: 0 },
    ...overrides,
  };
}

const settings = { bucket: 'b', verifyEtag: true };

describe('verified download', () => {
  it('renames the checked bytes into place under the name given for their sha256', async () => {
    const req = request({ fileName: (sha) => `bundle-${sha.slice(0, 16)}.tar`, durable: true });
    const got = await downloadVerified(answer({ ETag: `"${md5}"`, Metadata: { sha256 } }), settings, {
      ...req,
      expected: { what: 'pointer', sha256, size: bytes.length },
    });
    expect(got).toMatchObject({ sha256, size: bytes.length, bytes: bytes.length, etag: `"${md5}"` });
    expect(got!.path).toBe(join(req.targetDir, `bundle-${sha256.slice(0, 16)}.tar`));
    expect(readFileSync(got!.path)).toEqual(bytes);
    expect(readdirSync(req.targetDir)).toEqual([`bundle-${sha256.slice(0, 16)}.tar`]);
  });

  it('resolves undefined on 304 and writes nothing', async () => {
    const req = request({ ifNoneMatch: '"e1"' });
    expect(await downloadVerified(answer({ ETag: '"e1"' }), settings, req)).toBeUndefined();
    expect(readdirSync(req.targetDir)).toEqual([]);
  });

  const refusals: Array<[string, ConditionalGet, Partial<DownloadRequest>, RegExp | typeof TruncatedBodyError]> = [
    [
      'a sha256 other than the pointer names',
      answer(),
      { expected: { what: 'pointer p/latest', sha256: 'f'.repeat(64) } },
      /does not match the sha256 in its pointer p\/latest/,
    ],
    [
      'a sha256 other than the object metadata names',
      answer({ Metadata: { sha256: '0'.repeat(64) } }),
      {},
      /object metadata \(x-amz-meta-sha256\)/,
    ],
    [
      'a size other than the pointer names',
      answer(),
      { expected: { what: 'pointer p/latest', size: 1 } },
      /bytes but its pointer p\/latest says 1/,
    ],
    ['bytes that do not match a plain MD5 ETag', answer({ ETag: `"${'0'.repeat(32)}"` }), {}, /does not match its ETag/],
    ['an announced size over the bundle limit', answer({ ContentLength: 1e12 }), {}, /over the \d+-byte bundle limit/],
    ['a body shorter than announced', answer({ ContentLength: bytes.length + 10 }), {}, TruncatedBodyError],
  ];
  it.each(refusals)('refuses %s and leaves no file behind', async (_name, get, overrides, error) => {
    const req = request(overrides);
    const failure = await downloadVerified(get, settings, req).catch((e: unknown) => e);
    if (error instanceof RegExp) {
      expect(failure).toBeInstanceOf(IntegrityError);
      expect((failure as Error).message).toMatch(error);
    } else {
      expect(failure).toBeInstanceOf(error);
    }
    expect(readdirSync(req.targetDir)).toEqual([]);
  });

  it('skips the ETag check for KMS-encrypted objects and when verifyEtag is off', async () => {
    const wrongEtag = { ETag: `"${'0'.repeat(32)}"` };
    expect(await downloadVerified(answer({ ...wrongEtag, ServerSideEncryption: 'aws:kms' }), settings, request())).toMatchObject({
      sha256,
    });
    expect(await downloadVerified(answer(wrongEtag), { ...settings, verifyEtag: false }, request())).toMatchObject({ sha256 });
  });
});
