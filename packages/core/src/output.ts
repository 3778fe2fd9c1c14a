import { RESULT_TYPES, type CheckResult, type ResultType } from './types.js';

export interface ParsedOutput {
  results: CheckResult[];
  /** Top-level JSON values seen; `[]` counts, so a check can say "no results" explicitly. */
  values: number;
  /** One line per value that is not a valid result; empty when the output is fully valid. */
  problems: string[];
}

const SNIPPET = 80;

function snippet(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > SNIPPET ? `${flat.slice(0, SNIPPET)}…` : flat;
}

/**
 * Splits text into top-level JSON texts. Checks print one object, an array, NDJSON lines, or several
 * pretty-printed objects back to back, so we split on balanced brackets rather than on newlines.
 */
function* jsonTexts(text: string): Generator<{ text: string; offset: number; balanced: boolean }> {
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text[i]!;
    if (c === ' ' || c === '\n' || c === '\r' || c === '\t') {
      i++;
      continue;
    }
    const start = i;
    if (c !== '{' && c !== '[') {
      const end = text.indexOf('\n', i);
      i = end === -1 ? n : end + 1;
      yield { text: text.slice(start, i), offset: start, balanced: false };
      continue;
    }
    let depth = 0;
    let inString = false;
    for (; i < n; i++) {
      const ch = text[i]!;
      if (inString) {
        if (ch === '\\') i++;
        else if (ch === '"') inString = false;
      } else if (ch === '"') inString = true;
      else if (ch === '{' || ch === '[') depth++;
      else if (ch === '}' || ch === ']') {
        depth--;
        if (depth === 0) {
          i++;
          break;
        }
      }
    }
    yield { text: text.slice(start, i), offset: start, balanced: depth === 0 };
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
  let values = 0;
  const accept = (value: unknown, where: string) => {
    const problem = resultProblem(value);
    if (problem) problems.push(`${where}: ${problem}`);
    else {
      const r = fromLegacy(value as Record<string, unknown>) as unknown as CheckResult;
      results.push({ name: r.name, type: r.type, value: r.value });
    }
  };
  for (const piece of jsonTexts(stdout)) {
    const where = `at offset ${piece.offset}`;
    if (!piece.balanced) {
      problems.push(`${where}: not JSON: ${snippet(piece.text)}`);
      continue;
    }
    let value: unknown;
    try {
      value = JSON.parse(piece.text);
    } catch (error) {
      problems.push(`${where}: invalid JSON (${(error as Error).message}): ${snippet(piece.text)}`);
      continue;
    }
    values++;
    if (Array.isArray(value)) value.forEach((item, index) => accept(item, `${where}[${index}]`));
    else accept(value, where);
  }
  return { results, values, problems };
}
