// Conditional GET: one GetObject with If-None-Match set to the ETag of what the cache holds, so the common
// case of a fleet polling an unchanged bundle is a 304 with no body. Transient failures are retried with
// core's retry helper; every request made is counted, retries included.
import type { Readable } from 'node:stream';
import { GetObjectCommand, type GetObjectCommandOutput, type S3Client } from '@aws-sdk/client-s3';
import { withRetry, type RetryPolicy } from '@gather/core';
import { IntegrityError, isNotModified, isTransient } from './_errors.js';

/** HTTP requests made by one fetch. */
export interface RequestCounter {
  requests: number;
}

export interface GetRequest {
  key: string;
  /** The ETag held; undefined for an unconditional GET. */
  ifNoneMatch: string | undefined;
  signal: AbortSignal;
  counter: RequestCounter;
}

/** Resolves false on 304 (not modified); otherwise hands the response to `consume` and resolves true. */
export type ConditionalGet = (request: GetRequest, consume: (response: GetObjectCommandOutput) => Promise<void>) => Promise<boolean>;

export interface ConditionalGetOptions {
  bucket: string;
  client: () => S3Client;
  policy: RetryPolicy;
  onRetry?: (key: string, error: unknown, attempt: number, delayMs: number) => void;
}

export function createConditionalGet(options: ConditionalGetOptions): ConditionalGet {
  const { bucket, client, policy, onRetry } = options;
  return ({ key, ifNoneMatch, signal, counter }, consume) =>
    withRetry(
      async () => {
        counter.requests++;
        let response: GetObjectCommandOutput;
        try {
          response = await client().send(
            new GetObjectCommand({ Bucket: bucket, Key: key, ...(ifNoneMatch ? { IfNoneMatch: ifNoneMatch } : {}) }),
            { abortSignal: signal },
          );
        } catch (error) {
          if (ifNoneMatch && isNotModified(error)) return false;
          throw error;
        }
        // Consuming the body belongs to the attempt: a body cut short is retried like a failed request.
        await consume(response);
        return true;
      },
      isTransient,
      policy,
      signal,
      onRetry ? (error, attempt, delayMs) => onRetry(key, error, attempt, delayMs) : undefined,
    );
}

/** Reads a body of at most `limit` bytes (the pointer) into memory. */
export async function readSmallBody(body: Readable, limit: number, signal: AbortSignal): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    signal.throwIfAborted();
    size += (chunk as Buffer).length;
    if (size > limit) {
      body.destroy();
      throw new IntegrityError(`the object is over ${limit} bytes, too big for a pointer`);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}
