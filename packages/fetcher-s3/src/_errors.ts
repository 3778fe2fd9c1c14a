// Turns AWS SDK and network errors into messages that name the bucket and key and say what to do.
import { RetriesExhausted, redactText } from '@gather/core';

interface SdkErrorShape {
  name?: string;
  code?: string;
  Code?: string;
  message?: string;
  $fault?: string;
  $retryable?: unknown;
  $metadata?: { httpStatusCode?: number };
}

/** The downloaded body is shorter or longer than the server announced: retried, then reported. */
export class TruncatedBodyError extends Error {
  override name = 'TruncatedBodyError';
  constructor(
    readonly received: number,
    readonly expected: number,
  ) {
    super(`received ${received} of ${expected} bytes (the connection closed early)`);
  }
}

/** The downloaded bytes do not match a published hash: not retried (the object itself is wrong). */
export class IntegrityError extends Error {
  override name = 'IntegrityError';
}

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'EAI_AGAIN',
  'ENOTFOUND',
  'ERR_STREAM_PREMATURE_CLOSE',
  'UND_ERR_SOCKET',
]);
const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENETDOWN', 'ENOTFOUND', 'EAI_AGAIN']);
const THROTTLE_CODES = new Set([
  'SlowDown',
  'Throttling',
  'ThrottlingException',
  'TooManyRequests',
  'TooManyRequestsException',
  'RequestLimitExceeded',
  'RequestThrottled',
  'RequestTimeout',
  'RequestTimeoutException',
  'InternalError',
  'ServiceUnavailable',
]);
const DENIED_CODES = new Set([
  'AccessDenied',
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'ExpiredToken',
  'InvalidToken',
  'TokenRefreshRequired',
  'AllAccessDisabled',
  'AccountProblem',
]);

function shape(error: unknown): SdkErrorShape {
  return typeof error === 'object' && error !== null ? (error as SdkErrorShape) : {};
}

export function httpStatus(error: unknown): number | undefined {
  return shape(error).$metadata?.httpStatusCode;
}

/** The S3 error code (NoSuchKey, AccessDenied...) when the error came from S3. */
export function s3Code(error: unknown): string | undefined {
  const e = shape(error);
  return e.Code ?? (e.$metadata ? e.name : undefined);
}

/** The Node/network error code (ECONNREFUSED...) of an error or of its causes. */
export function networkCode(error: unknown): string | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 5 && current; depth++) {
    const e = current as NodeJS.ErrnoException & { errors?: unknown[] };
    if (typeof e.code === 'string' && NETWORK_CODES.has(e.code)) return e.code;
    if (Array.isArray(e.errors)) {
      for (const inner of e.errors) {
        const code = networkCode(inner);
        if (code) return code;
      }
    }
    if (e instanceof Error && e.message === 'aborted' && !('$metadata' in e)) return 'ECONNRESET';
    current = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

export function isNotModified(error: unknown): boolean {
  return httpStatus(error) === 304 || s3Code(error) === 'NotModified';
}

export function isNotFound(error: unknown): boolean {
  const code = s3Code(error);
  return code === 'NoSuchKey' || code === 'NotFound' || (httpStatus(error) === 404 && code !== 'NoSuchBucket');
}

export function isPreconditionFailed(error: unknown): boolean {
  return httpStatus(error) === 412 || s3Code(error) === 'PreconditionFailed';
}

/** 5xx, throttling, connection reset or refused, a truncated body, a checksum mismatch in transit. */
export function isTransient(error: unknown): boolean {
  if (error instanceof TruncatedBodyError) return true;
  if (error instanceof IntegrityError) return false;
  const status = httpStatus(error);
  const code = s3Code(error);
  if (status !== undefined && status >= 500) return true;
  if (status === 429 || (code !== undefined && THROTTLE_CODES.has(code))) return true;
  if (status !== undefined && status !== 0) return false;
  if (networkCode(error)) return true;
  const e = shape(error);
  if (e.name === 'TimeoutError') return true;
  // The SDK's response checksum validation fails while the body streams when bytes were corrupted in transit.
  if (typeof e.message === 'string' && /checksum mismatch/i.test(e.message)) return true;
  return false;
}

export interface ErrorContext {
  /** What was being done, e.g. "fetch" or "publish". */
  action: string;
  bucket: string;
  key: string;
  endpoint: string;
  credentialsSource: string;
  secrets: readonly string[];
  /** Extra text for a missing key, e.g. how to publish. */
  notFoundHint?: string;
}

function clean(text: string | undefined, max = 300): string {
  if (!text) return '';
  const oneLine = text.replace(/\s+/g, ' ').trim();
  return oneLine.length > max ? `${oneLine.slice(0, max)}...` : oneLine;
}

/** A message naming bucket, key, endpoint and what to do; the caller wraps it in the right GatherError. */
export function describeS3Error(raw: unknown, ctx: ErrorContext): string {
  const attempts = raw instanceof RetriesExhausted ? raw.attempts : 1;
  const error = raw instanceof RetriesExhausted ? raw.last : raw;
  const url = `s3://${ctx.bucket}/${ctx.key}`;
  const status = httpStatus(error);
  const code = s3Code(error);
  const after = attempts > 1 ? ` after ${attempts} attempts` : '';
  const e = shape(error);
  let message: string;

  if (code === 'NoSuchBucket') {
    message =
      `Bucket "${ctx.bucket}" does not exist at ${ctx.endpoint} (while trying to ${ctx.action} ${url}). ` +
      'Check the bucket name (option "bucket" / GATHER_S3_BUCKET), the endpoint and the region.';
  } else if (isNotFound(error)) {
    message = `No object ${url} at ${ctx.endpoint}. ${ctx.notFoundHint ?? 'Check the bucket and key.'}`;
  } else if ((code && DENIED_CODES.has(code)) || status === 403) {
    const hint =
      code === 'InvalidAccessKeyId'
        ? 'The server does not know this access key ID: check the credentials, and that they belong to this endpoint/account.'
        : code === 'SignatureDoesNotMatch'
          ? 'The secret access key does not match the access key ID (or the region/clock is wrong): check the credentials.'
          : code === 'ExpiredToken' || code === 'TokenRefreshRequired' || code === 'InvalidToken'
            ? 'The session token expired or is invalid: refresh the credentials.'
            : `Check that these credentials allow s3:${ctx.action === 'fetch' ? 'GetObject' : 'PutObject and s3:GetObject'} on arn:aws:s3:::${ctx.bucket}/${ctx.key} ` +
              '(without s3:ListBucket on the bucket, S3 also answers a missing key with AccessDenied).';
    message = `Access denied to ${url} (S3 said ${code ?? status}) with credentials from ${ctx.credentialsSource}. ${hint}`;
  } else if (code === 'PermanentRedirect' || code === 'AuthorizationHeaderMalformed' || status === 301) {
    message =
      `Bucket "${ctx.bucket}" is not in the region used (S3 said ${code ?? status}: ${clean(e.message)}). ` +
      'Pass the bucket\'s region (option "region" / --region / AWS_REGION).';
  } else if (e.name === 'CredentialsProviderError' || /Could not load credentials/i.test(e.message ?? '')) {
    message =
      `No AWS credentials found to ${ctx.action} ${url}: tried ${ctx.credentialsSource}. ` +
      'Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run with an instance/CI role.';
  } else if (/Region is missing/i.test(e.message ?? '')) {
    message = `No AWS region configured to ${ctx.action} ${url}. Pass option "region" (--region) or set AWS_REGION.`;
  } else if (status !== undefined && status >= 400 && status !== 0) {
    const kind = status >= 500 || status === 429 || (code && THROTTLE_CODES.has(code)) ? 'S3 kept failing' : 'S3 refused the request';
    message = `${kind} for ${url} at ${ctx.endpoint}: HTTP ${status} ${code ?? ''}${after}. ${clean(e.message)}`.trimEnd();
    if (kind === 'S3 kept failing') message += ' Try again later; if it persists, check the service health.';
  } else if (networkCode(error) && UNREACHABLE_CODES.has(networkCode(error)!)) {
    message =
      `Cannot reach the S3 endpoint ${ctx.endpoint} (${networkCode(error)}) to ${ctx.action} ${url}${after}. ` +
      'Check the endpoint (option "endpoint" / GATHER_S3_ENDPOINT), DNS, firewall and proxy settings.';
  } else if (error instanceof TruncatedBodyError || networkCode(error)) {
    const what = error instanceof TruncatedBodyError ? error.message : `connection error ${networkCode(error)}`;
    message = `Download of ${url} from ${ctx.endpoint} failed${after}: ${what}. Nothing was kept; try again.`;
  } else if (error instanceof IntegrityError) {
    message = `${error.message} Nothing was kept.`;
  } else if (e.name === 'TimeoutError') {
    message = `The S3 endpoint ${ctx.endpoint} stopped answering while trying to ${ctx.action} ${url}${after}. Check the network, or raise timeoutMs.`;
  } else {
    message = `Could not ${ctx.action} ${url} at ${ctx.endpoint}${after}: ${e.name ?? 'Error'}: ${clean(e.message ?? String(error))}`;
  }
  return redactText(message, ctx.secrets);
}
