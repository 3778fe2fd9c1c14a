import { RESULT_TYPES, type CheckResult, type ResultType } from './types.js';

export interface ParsedOutput {
  results: CheckResult[];
  /** Top-level JSON values seen; `[]` counts, so a check can say "no results" explicitly. */
  values: number;
  /** The first problems (at most MAX_PROBLEMS_KEPT), one line per value that is not a valid result. */
  problems: string[];
  /** How many problems there were in all; 0 when the output is fully valid. */
  problemCount: number;
}

/**
 * Deepest nesting of arrays and objects in a result's value (`1` is 0 levels, `[1]` 1, `{"a":[1]}` 2).
 * Deeper values are refused as invalid output: 20 is what the `flattened` fields of the Elasticsearch
 * mapping take (`depth_limit`) and far below what JSON.stringify (a recursion) and Elasticsearch (1000
 * levels in a document) accept, so every accepted value can be serialised, indexed and displayed.
 */
export const MAX_VALUE_DEPTH = 20;

/** Problems kept per check: the error record says how many more there were, not what they were. */
export const MAX_PROBLEMS_KEPT = 3;

const SNIPPET = 80;

/** A copy that shares no memory with `text` (V8 keeps a slice's whole parent string alive otherwise). */
export function detached(text: string): string {
  return Buffer.from(text, 'utf8').toString('utf8');
}

function snippet(text: string, start: number, end: number): string {
  const flat = text
    .slice(start, Math.min(end, start + SNIPPET * 4))
    .replace(/\s+/g, ' ')
    .trim();
  return detached(flat.length > SNIPPET ? `${flat.slice(0, SNIPPET)}…` : flat);
}

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

/**
 * Scans one JSON value starting at `start` (not whitespace) up to where it ends: a bracket balancing its
 * opener, or, for a scalar, the next `,` / closing bracket / newline at its level. `depth` is the deepest
 * nesting of brackets inside it. Nothing is allocated: outputs of up to the stdout cap are scanned in place.
 */
function scanValue(text: string, start: number, stopAtComma: boolean): { end: number; depth: number; balanced: boolean } {
  const n = text.length;
  const first = text.charCodeAt(start);
  if (first !== 0x7b && first !== 0x5b) {
    let i = start;
    let inString = false;
    for (; i < n; i++) {
      const c = text.charCodeAt(i);
      if (inString) {
        if (c === 0x5c) i++;
        else if (c === 0x22) inString = false;
      } else if (c === 0x22) inString = true;
      else if (c === 0x0a || (stopAtComma && (c === 0x2c || c === 0x5d || c === 0x7d))) break;
    }
    return { end: i, depth: 0, balanced: true };
  }
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = start; i < n; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      depth++;
      if (depth > deepest) deepest = depth;
    } else if (c === 0x7d || c === 0x5d) {
      depth--;
      if (depth === 0) return { end: i + 1, depth: deepest, balanced: true };
    }
  }
  return { end: n, depth: deepest, balanced: false };
}

/**
 * The items of a check's output, one at a time. Checks print one object, an array, NDJSON lines, or
 * several pretty-printed objects back to back, so top-level texts are split on balanced brackets rather
 * than on newlines; a top-level array is split into its elements, so each is parsed (and dropped) on its
 * own and memory stays proportional to one item, not to the whole output.
 */
function* outputItems(
  text: string,
): Generator<
  | { kind: 'item'; start: number; end: number; depth: number; where: string }
  | { kind: 'value' }
  | { kind: 'junk'; start: number; end: number; where: string }
> {
  const n = text.length;
  let i = 0;
  while (i < n) {
    if (isSpace(text.charCodeAt(i))) {
      i++;
      continue;
    }
    const start = i;
    const c = text.charCodeAt(i);
    if (c !== 0x7b && c !== 0x5b) {
      const end = text.indexOf('\n', i);
      i = end === -1 ? n : end + 1;
      yield { kind: 'junk', start, end: i, where: `at offset ${start}` };
      continue;
    }
    const whole = scanValue(text, start, false);
    i = whole.end;
    if (!whole.balanced) {
      yield { kind: 'junk', start, end: whole.end, where: `at offset ${start}` };
      continue;
    }
    yield { kind: 'value' };
    if (c === 0x7b) {
      yield { kind: 'item', start, end: whole.end, depth: whole.depth, where: `at offset ${start}` };
      continue;
    }
    // The elements of a top-level array, between its brackets.
    let j = start + 1;
    const last = whole.end - 1;
    let index = 0;
    while (j < last) {
      while (j < last && isSpace(text.charCodeAt(j))) j++;
      if (j >= last) break;
      const element = scanValue(text, j, true);
      const end = Math.min(element.end, last);
      yield { kind: 'item', start: j, end, depth: element.depth, where: `at offset ${start}[${index++}]` };
      j = end;
      while (j < last && isSpace(text.charCodeAt(j))) j++;
      if (j < last) {
        if (text.charCodeAt(j) === 0x2c) j++;
        else {
          // Not a comma after an element: the rest of the array is one malformed item.
          yield { kind: 'item', start: j, end: last, depth: 0, where: `at offset ${start}[${index++}]` };
          break;
        }
      }
    }
  }
}

function typeOf(value: unknown): ResultType | 'null' | 'other' {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  switch (typeof value) {
    case 'boolean':
      return 'boolean';
    case 'number':
      return Number.isFinite(value) ? 'number' : 'other';
    case 'string':
      return 'string';
    case 'object':
      return 'object';
    default:
      return 'other';
  }
}

/**
 * The original gather printed the value under a key named after its type, booleans as 1/0:
 * `{"name": "x", "type": "boolean", "boolean": 1}`. Such output is read as `{..., "value": true}` so old
 * checks keep working.
 */
function fromLegacy(object: Record<string, unknown>): Record<string, unknown> {
  const { type } = object;
  if ('value' in object || typeof type !== 'string' || !(type in object)) return object;
  let value = object[type];
  if (type === 'boolean' && (value === 1 || value === 0)) value = value === 1;
  return { name: object.name, type, value };
}

/** Why `value` is not a result, or undefined when it is one. */
export function resultProblem(value: unknown): string | undefined {
  if (typeOf(value) !== 'object') return `expected a {name, type, value} object, got ${typeOf(value)}`;
  const { name, type, value: v } = fromLegacy(value as Record<string, unknown>);
  if (typeof name !== 'string' || name.trim() === '') return '"name" must be a non-empty string';
  if (typeof type !== 'string' || !RESULT_TYPES.includes(type as ResultType)) {
    return `"${name}": "type" must be one of ${RESULT_TYPES.join(', ')} (got ${JSON.stringify(type)})`;
  }
  if (v === undefined) return `"${name}": "value" is missing`;
  const actual = typeOf(v);
  if (actual !== type) return `"${name}": type is "${type}" but value is ${actual}`;
  return undefined;
}

/** Parses a check's stdout into valid results and a list of problems (see checks/README.md). */
export function parseCheckOutput(stdout: string): ParsedOutput {
  const results: CheckResult[] = [];
  const problems: string[] = [];
  let problemCount = 0;
  let values = 0;
  const problem = (message: () => string) => {
    if (problemCount++ < MAX_PROBLEMS_KEPT) problems.push(message());
  };
  for (const item of outputItems(stdout)) {
    if (item.kind === 'value') {
      values++;
      continue;
    }
    if (item.kind === 'junk') {
      problem(() => `${item.where}: not JSON: ${snippet(stdout, item.start, item.end)}`);
      continue;
    }
    // The result object is one level; its value may have MAX_VALUE_DEPTH more.
    if (item.depth > MAX_VALUE_DEPTH + 1) {
      problem(() => `${item.where}: nested deeper than ${MAX_VALUE_DEPTH} levels: ${snippet(stdout, item.start, item.end)}`);
      continue;
    }
    let value: unknown;
    try {
      value = JSON.parse(stdout.slice(item.start, item.end));
    } catch (error) {
      problem(() => `${item.where}: invalid JSON (${(error as Error).message}): ${snippet(stdout, item.start, item.end)}`);
      continue;
    }
    const invalid = resultProblem(value);
    if (invalid) problem(() => detached(`${item.where}: ${invalid}`));
    else {
      const r = fromLegacy(value as Record<string, unknown>) as unknown as CheckResult;
      results.push({ name: r.name, type: r.type, value: r.value });
    }
  }
  return { results, values, problems, problemCount };
}
