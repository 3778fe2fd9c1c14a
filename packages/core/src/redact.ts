/**
 * The one redaction point: everything about to be printed, logged or exported passes through here.
 *
 * Two mechanisms: exact-value scrubbing of a registered set of secret values (the agent's own credentials,
 * wherever they appear: a result's name or value, an object key, an error message, a stderr excerpt), and,
 * for logs only, masking of fields whose key names a credential. Credentials embedded in URLs
 * (https://user:pass@host) are masked in text as well.
 */
import type { ErrorDocument, ExportSummary, Exporter, ResultDocument, RunSummaryDocument } from './types.js';

const SECRET_KEY = /pass(word)?|secret|token|api[-_]?key|authorization|credential|private[-_]?key|session/i;
export const MASK = '[redacted]';

/** Shorter values would mangle ordinary text ("true", ports); the agent warns about such secrets. */
export const MIN_SECRET_LENGTH = 4;

/**
 * The forms in which a secret value may show up: as is, URL-encoded, base64 (as in an HTTP header), and
 * JSON-escaped (inside a JSON string a check printed). Longest first, so a longer form is masked whole.
 */
export function secretForms(secrets: readonly string[]): string[] {
  const forms = new Set<string>();
  for (const secret of secrets) {
    if (typeof secret !== 'string' || secret.length < MIN_SECRET_LENGTH) continue;
    forms.add(secret);
    forms.add(encodeURIComponent(secret));
    forms.add(Buffer.from(secret).toString('base64').replace(/=+$/, ''));
    forms.add(JSON.stringify(secret).slice(1, -1));
  }
  return [...forms].filter((form) => form.length >= MIN_SECRET_LENGTH).sort((a, b) => b.length - a.length);
}

/** Replaces every occurrence of the secret values in text and, deeply, in JSON-like values (keys too). */
export interface Scrubber {
  /** True when there is nothing to scrub (no secret registered): callers may skip copying. */
  readonly empty: boolean;
  text(text: string): string;
  value<T>(value: T): T;
}

export function createScrubber(secrets: readonly string[]): Scrubber {
  const forms = secretForms(secrets);
  const text = (input: string): string => {
    let out = input;
    for (const form of forms) if (out.includes(form)) out = out.split(form).join(MASK);
    return out;
  };
  // `ancestors`, not every object seen: documents of a batch share objects (host, bundle), which are no cycle.
  const value = <T>(input: T, ancestors = new Set<object>()): T => {
    if (typeof input === 'string') return text(input) as T;
    if (typeof input !== 'object' || input === null) return input;
    if (ancestors.has(input)) return '[circular]' as T;
    ancestors.add(input);
    let out: unknown;
    if (Array.isArray(input)) out = input.map((item) => value(item, ancestors));
    else {
      const copy: Record<string, unknown> = {};
      for (const [key, item] of Object.entries(input)) copy[text(key)] = value(item, ancestors);
      out = copy;
    }
    ancestors.delete(input);
    return out as T;
  };
  return { empty: forms.length === 0, text, value: (input) => (forms.length === 0 ? input : value(input)) };
}

/**
 * An exporter that scrubs the secret values out of every document before the wrapped exporter sees it, so
 * no destination (NDJSON, Elasticsearch, its spool and dead letters) ever receives them.
 */
export function scrubbingExporter(exporter: Exporter, scrubber: Scrubber): Exporter {
  if (scrubber.empty) return exporter;
  const scrubbed: Exporter = {
    name: exporter.name,
    exportResults: (results: readonly ResultDocument[]) => exporter.exportResults(scrubber.value(results)),
    exportErrors: (errors: readonly ErrorDocument[]) => exporter.exportErrors(scrubber.value(errors)),
    flush: () => exporter.flush(),
    close: () => exporter.close(),
  };
  if (exporter.exportRunSummary) {
    const exportRunSummary = exporter.exportRunSummary.bind(exporter);
    scrubbed.exportRunSummary = (summary: RunSummaryDocument) => exportRunSummary(scrubber.value(summary));
  }
  if (exporter.summary) {
    const summary = exporter.summary.bind(exporter);
    scrubbed.summary = (): ExportSummary => summary();
  }
  return scrubbed;
}

const URL_CREDENTIALS = /(\b[a-z][a-z0-9+.-]*:\/\/)([^/\s:@]+):([^/\s@]+)@/gi;

function maskUrlCredentials(text: string): string {
  return text.replace(URL_CREDENTIALS, `$1$2:${MASK}@`);
}

export function redactText(text: string, secrets: readonly string[] = []): string {
  const out = maskUrlCredentials(text);
  return secrets.length === 0 ? out : createScrubber(secrets).text(out);
}

/** For logs: secret values scrubbed everywhere (keys too), and fields whose key names a credential masked. */
export function redact<T>(value: T, secrets: readonly string[] = []): T {
  const scrubber = createScrubber(secrets);
  const text = (input: string) => scrubber.text(maskUrlCredentials(input));
  const walk = (input: unknown, ancestors: Set<object>): unknown => {
    if (typeof input === 'string') return text(input);
    if (typeof input !== 'object' || input === null) return input;
    if (ancestors.has(input)) return '[circular]';
    ancestors.add(input);
    let out: unknown;
    if (Array.isArray(input)) out = input.map((item) => walk(item, ancestors));
    else {
      const copy: Record<string, unknown> = {};
      for (const [key, item] of Object.entries(input)) {
        copy[text(key)] = SECRET_KEY.test(key) && item !== undefined && item !== null && item !== '' ? MASK : walk(item, ancestors);
      }
      out = copy;
    }
    ancestors.delete(input);
    return out;
  };
  return walk(value, new Set()) as T;
}
