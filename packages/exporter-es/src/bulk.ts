/**
 * The Bulk API: entries are sent with deterministic ids; 201 and 409 (already there) are delivered, 429/5xx
 * items and failed requests are retried with backoff, other item errors are dead-lettered (sent to the
 * errors index with the document and the reason).
 */
import { backoffDelay, sleep } from '@gather/core';
import type { ExportContext } from './context.js';
import { deadLetterEntry } from './dead-letters.js';
import type { BatchOutcome, BulkItem, Entry } from './entry.js';
import { classify, isTimeout, retryAfterOf, STOPPED } from './transport.js';

interface BulkResponse {
  errors?: boolean;
  items?: Array<Record<string, BulkItem>>;
}

/** The NDJSON body of a bulk request: an action line per entry, and its source unless it is a delete. */
export function bulkBody(entries: readonly Entry[]): string {
  let body = '';
  for (const e of entries) {
    const op = e.op ?? 'create';
    const version = e.version !== undefined ? `,"version":${e.version},"version_type":"external"` : '';
    body += `{"${op}":{"_index":${JSON.stringify(e.index)},"_id":${JSON.stringify(e.id)}${version}}}\n${op === 'delete' ? '' : `${e.source}\n`}`;
  }
  return body;
}

function bulk(ctx: ExportContext, entries: readonly Entry[]): Promise<BulkResponse> {
  return ctx.transport.request<BulkResponse>({
    method: 'POST',
    path: '/_bulk',
    querystring: { filter_path: 'errors,items.*.status,items.*.error.type,items.*.error.reason' },
    bulkBody: bulkBody(entries),
  });
}

/** Sends entries until each is delivered, dead-lettered, failed, or undeliverable for now (to spool). */
export async function send(ctx: ExportContext, entries: Entry[]): Promise<BatchOutcome> {
  const { settings, outage, transport } = ctx;
  const outcome: BatchOutcome = { delivered: 0, deadLettered: 0, failed: 0, undeliverable: [] };
  const rejected: Array<{ entry: Entry; item: BulkItem }> = [];
  let todo = entries;
  // What the server asked for (Retry-After) when it refused the last attempt: the next waits at least that.
  let serverWaitMs = 0;
  for (let attempt = 0; todo.length > 0; attempt++) {
    if (attempt > 0) {
      ctx.stats.retried += todo.length;
      // core's one backoff (full jitter): a fleet that failed together does not retry together.
      const backoff = backoffDelay(attempt, { baseDelayMs: settings.retryBaseDelayMs, maxDelayMs: settings.retryMaxDelayMs });
      const delay = Math.max(serverWaitMs, backoff);
      await sleep(delay, ctx.signal).catch(() => undefined);
      if (outage.fatal || transport.stopped) {
        outcome.undeliverable.push(...todo);
        outcome.cause = outage.fatal ?? STOPPED;
        break;
      }
    }
    let response: BulkResponse;
    try {
      response = await bulk(ctx, todo);
    } catch (error) {
      if (transport.stopped) {
        outcome.undeliverable.push(...todo);
        outcome.cause = STOPPED;
        break;
      }
      // A timeout already waited requestTimeoutMs: retry it once at most, then spool (a black-holed node).
      const limit = isTimeout(error) ? Math.min(1, settings.maxRetries) : settings.maxRetries;
      // A Retry-After longer than the longest backoff is not waited for here: the documents go to the spool,
      // and the outage window lasts at least that long (outage.ts).
      const asked = retryAfterOf(error) ?? 0;
      if (classify(error) === 'retry' && attempt < limit && asked <= settings.retryMaxDelayMs) {
        serverWaitMs = asked;
        continue;
      }
      outage.fail(error, 'sending documents');
      outcome.undeliverable.push(...todo);
      outcome.cause = error;
      break;
    }
    serverWaitMs = 0;
    const items = response.items ?? [];
    if (!response.errors && items.length === todo.length) {
      outage.answered();
      const currentWrites = todo.filter((e) => e.op).length;
      outcome.delivered += todo.length - currentWrites;
      outcome.currentState = (outcome.currentState ?? 0) + currentWrites;
      break;
    }
    const retry: Entry[] = [];
    let lastRetryable: BulkItem | undefined;
    todo.forEach((entry, i) => {
      const item = items[i] && Object.values(items[i])[0];
      const status = item?.status ?? 503;
      // 409: already there (create) or a newer version is (external versioning); 404: nothing to delete.
      if (status < 300 || status === 409 || (status === 404 && entry.op === 'delete')) {
        if (entry.op) outcome.currentState = (outcome.currentState ?? 0) + 1;
        else outcome.delivered++;
      } else if (status === 429 || status >= 500) {
        retry.push(entry);
        lastRetryable = item ?? { status, error: { type: 'missing_item', reason: 'no answer for this document' } };
      } else rejected.push({ entry, item: item! });
    });
    todo = retry;
    // Refused documents are the documents' problem; documents to retry (429, 5xx) mean it is not back yet.
    if (todo.length === 0) outage.answered();
    if (todo.length > 0 && attempt >= settings.maxRetries) {
      const cause = new Error(
        `${todo.length} documents kept failing with HTTP ${lastRetryable?.status} ${lastRetryable?.error?.type ?? ''}: ${lastRetryable?.error?.reason ?? ''}`,
      );
      outage.markDown(cause);
      outcome.undeliverable.push(...todo);
      outcome.cause = cause;
      break;
    }
  }
  if (rejected.length > 0) await sendDeadLetters(ctx, rejected, outcome);
  return outcome;
}

/** Rejected documents go to the errors index with the reason; a rejected dead letter is lost (counted failed). */
async function sendDeadLetters(
  ctx: ExportContext,
  rejected: Array<{ entry: Entry; item: BulkItem }>,
  outcome: BatchOutcome,
): Promise<void> {
  const letters: Entry[] = [];
  let example = '';
  for (const { entry, item } of rejected) {
    const reason = `HTTP ${item.status} ${item.error?.type ?? 'error'}: ${item.error?.reason ?? ''}`;
    example ||= reason;
    if (entry.deadLetter) {
      outcome.failed++;
      ctx.log('error', `Elasticsearch rejected the dead letter ${entry.id} (${ctx.text(reason)}); the document is lost.`);
    } else letters.push(deadLetterEntry(entry, item, ctx.settings.errorsIndex, ctx.scrub));
  }
  if (letters.length === 0) return;
  ctx.log(
    'warn',
    `Elasticsearch rejected ${letters.length} documents (e.g. ${ctx.text(example)}); written to ${ctx.settings.errorsIndex} with the reason.`,
  );
  const sent = await send(ctx, letters);
  outcome.deadLettered += sent.delivered;
  outcome.failed += sent.failed + sent.deadLettered;
  if (sent.undeliverable.length > 0) {
    outcome.undeliverable.push(...sent.undeliverable);
    outcome.cause ??= sent.cause;
  }
}
