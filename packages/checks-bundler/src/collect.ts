/**
 * Reads and validates a checks/ directory. Every problem is collected (not just the first) so one CI run
 * shows everything to fix; the result is thrown as a single ChecksInvalidError.
 */
import { DURATION_RANGES } from '@gather/core';
import { lstat, readdir, readFile, realpath, stat } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { CATEGORIES, ChecksInvalidError, MAX_CHECK_BYTES, type BundledCheck, type Category } from '@gather/core';

export const SCOPE = 'checks-bundler';
/** Largest accepted `# gather: timeout=N`, in seconds: core's range, the one the agent enforces too. */
export const MAX_TIMEOUT_SEC = DURATION_RANGES.checkTimeoutSec.max;
const MIN_TIMEOUT_SEC = DURATION_RANGES.checkTimeoutSec.min;
/** The timeout directive must be within this many lines from the top of a script. */
export const TIMEOUT_DIRECTIVE_LINES = 10;

const CHECK_PREFIX = 'run-';
const CHECK_ID = /^[a-z]{3}$/;
const SHEBANG = /^#!\s*(?:\/usr\/bin\/env\s+bash|\/bin\/bash|\/usr\/bin\/bash)(?:\s.*)?$/;
const DIRECTIVE = /^#\s*gather:\s*([A-Za-z_-]+)\s*=\s*(.*?)\s*$/;

/** What a valid checks/ directory holds. */
export interface CollectedChecks {
  /** Absolute path of the checks directory. */
  checksDir: string;
  /** Text of checks/common. */
  prelude: string;
  /** Every check, sorted by category then id. */
  checks: BundledCheck[];
  /** Newest modification time (ms since epoch) among the files read (common and the run-* scripts). */
  newestMtimeMs: number;
}

export interface CollectOptions {
  /** Reads a file's bytes; injectable so tests can simulate I/O errors (tests run as root). */
  readFile?: (path: string) => Promise<Uint8Array>;
}

function errorCode(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  return typeof code === 'string' ? code : ((error as Error)?.message ?? String(error));
}

function describeType(s: { isDirectory(): boolean; isFIFO(): boolean; isSocket(): boolean }): string {
  if (s.isDirectory()) return 'a directory';
  if (s.isFIFO()) return 'a FIFO';
  if (s.isSocket()) return 'a socket';
  return 'not a regular file';
}

function inside(root: string, target: string): boolean {
  const rel = relative(root, target);
  return rel !== '' && !rel.startsWith('..' + sep) && rel !== '..' && !isAbsolute(rel);
}

interface TextFile {
  text: string;
  mtimeMs: number;
}

/**
 * Reads one input file as UTF-8 text, pushing a problem (and returning undefined) when it is not a
 * regular file inside the checks directory, unreadable, binary or not UTF-8.
 */
async function readText(
  root: string,
  realRoot: string,
  rel: string,
  problems: string[],
  read: (path: string) => Promise<Uint8Array>,
): Promise<TextFile | undefined> {
  const abs = join(root, rel);
  let real: string;
  try {
    real = await realpath(abs);
  } catch (error) {
    problems.push(`${rel}: cannot be read (${errorCode(error)}); check that it exists and is not a broken symlink.`);
    return undefined;
  }
  if (!inside(realRoot, real)) {
    problems.push(`${rel}: resolves to ${real}, outside the checks directory; replace the symlink with the file itself.`);
    return undefined;
  }
  let info;
  try {
    info = await stat(real);
  } catch (error) {
    problems.push(`${rel}: cannot be read (${errorCode(error)}); fix its permissions.`);
    return undefined;
  }
  if (!info.isFile()) {
    problems.push(`${rel}: is ${describeType(info)}; it must be a regular file (rename or remove it).`);
    return undefined;
  }
  if (info.size > MAX_CHECK_BYTES) {
    problems.push(
      `${rel}: is ${info.size} bytes, over the ${MAX_CHECK_BYTES}-byte limit of a check script; split it or move data out of it.`,
    );
    return undefined;
  }
  let bytes: Uint8Array;
  try {
    bytes = await read(real);
  } catch (error) {
    problems.push(`${rel}: cannot be read (${errorCode(error)}); fix its permissions.`);
    return undefined;
  }
  if (bytes.includes(0)) {
    problems.push(`${rel}: contains NUL bytes (a binary file?); checks must be bash text files.`);
    return undefined;
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    problems.push(`${rel}: is not valid UTF-8; save it as UTF-8 text.`);
    return undefined;
  }
  if (text.startsWith('\uFEFF')) {
    problems.push(`${rel}: starts with a UTF-8 byte order mark; save it without BOM.`);
  }
  if (text.includes('\r\n')) {
    problems.push(`${rel}: has Windows (CRLF) line endings, which break bash; convert it with dos2unix.`);
  }
  return { text, mtimeMs: info.mtimeMs };
}

/** Validates a check script's header lines; returns its timeout (seconds) if it sets one. */
function checkScript(rel: string, text: string, problems: string[]): number | undefined {
  const lines = text.split('\n');
  const first = lines[0] ?? '';
  // No shebang means bash (checks from the original gather have none); any other interpreter is refused.
  if (first.startsWith('#!') && !SHEBANG.test(first.replace(/\r$/, ''))) {
    const shown = first.length > 60 ? `${first.slice(0, 60)}…` : first;
    problems.push(
      `${rel}: checks run with bash; the shebang must be #!/usr/bin/env bash, #!/bin/bash or #!/usr/bin/bash ` +
        `(or none), found ${JSON.stringify(shown)}.`,
    );
  }
  let timeoutSec: number | undefined;
  let seenTimeout = false;
  lines.forEach((raw, index) => {
    const match = DIRECTIVE.exec(raw.replace(/\r$/, ''));
    if (!match) return;
    const key = match[1] ?? '';
    const value = match[2] ?? '';
    const lineNo = index + 1;
    if (key !== 'timeout') {
      if (lineNo <= TIMEOUT_DIRECTIVE_LINES) {
        problems.push(`${rel}:${lineNo}: unknown directive "# gather: ${key}=..."; the only one is "# gather: timeout=N".`);
      }
      return;
    }
    if (lineNo > TIMEOUT_DIRECTIVE_LINES) {
      problems.push(
        `${rel}:${lineNo}: "# gather: timeout=" is ignored after line ${TIMEOUT_DIRECTIVE_LINES}; move it to the top of the script.`,
      );
      return;
    }
    if (seenTimeout) {
      problems.push(`${rel}:${lineNo}: "# gather: timeout=" appears twice; keep one.`);
      return;
    }
    seenTimeout = true;
    const n = /^[1-9][0-9]*$/.test(value) ? Number(value) : NaN;
    if (!Number.isSafeInteger(n) || n < MIN_TIMEOUT_SEC || n > MAX_TIMEOUT_SEC) {
      problems.push(
        `${rel}:${lineNo}: timeout must be a whole number of seconds from ${MIN_TIMEOUT_SEC} to ${MAX_TIMEOUT_SEC}, found ${JSON.stringify(value)}.`,
      );
      return;
    }
    timeoutSec = n;
  });
  return timeoutSec;
}

/** Reads and validates `checksDir`; throws one ChecksInvalidError listing every problem. */
export async function collectChecksWith(checksDir: string, options: CollectOptions = {}): Promise<CollectedChecks> {
  const read = options.readFile ?? ((path: string) => readFile(path));
  const root = resolve(checksDir);
  const problems: string[] = [];
  const fail = (): never => {
    throw new ChecksInvalidError(
      `The checks directory ${root} has ${problems.length} problem${problems.length === 1 ? '' : 's'}:\n` +
        problems.map((p) => `  - ${p}`).join('\n') +
        '\nFix every problem listed and build again.',
      { scope: SCOPE, problems: [...problems] },
    );
  };

  let realRoot: string;
  try {
    realRoot = await realpath(root);
    if (!(await stat(realRoot)).isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' });
  } catch (error) {
    problems.push(`${root}: is not a readable directory (${errorCode(error)}); pass the checks directory with --checks.`);
    return fail();
  }

  let newestMtimeMs = 0;
  let prelude: string | undefined;
  const hasCommon = await lstat(join(root, 'common')).then(
    () => true,
    () => false,
  );
  if (!hasCommon) {
    problems.push('common: is missing; create checks/common with the shared bash functions (it may be empty).');
  } else {
    const common = await readText(root, realRoot, 'common', problems, read);
    if (common) {
      prelude = common.text;
      newestMtimeMs = Math.max(newestMtimeMs, common.mtimeMs);
    }
  }

  const checks: BundledCheck[] = [];
  const firstSeen = new Map<string, string>();
  let categoriesFound = 0;
  let runFiles = 0;
  for (const category of CATEGORIES) {
    let names: string[];
    try {
      const entries = await readdir(join(root, category));
      names = entries.filter((name) => name.startsWith(CHECK_PREFIX)).sort();
      categoriesFound++;
    } catch (error) {
      const code = errorCode(error);
      if (code !== 'ENOENT') {
        problems.push(`${category}/: cannot be listed (${code}); it must be a directory of run-xyz scripts.`);
        categoriesFound++;
      }
      continue;
    }
    for (const name of names) {
      runFiles++;
      const rel = `${category}/${name}`;
      const id = name.slice(CHECK_PREFIX.length);
      let idValid = CHECK_ID.test(id);
      if (!idValid) {
        problems.push(`${rel}: the check id ${JSON.stringify(id)} must be exactly 3 lowercase letters (a-z), e.g. run-xyz.`);
      } else {
        const other = firstSeen.get(id);
        if (other !== undefined) {
          problems.push(`${rel}: duplicate check id "${id}" (also ${other}); ids are global across categories, rename one.`);
          idValid = false;
        } else {
          firstSeen.set(id, rel);
        }
      }
      const file = await readText(root, realRoot, rel, problems, read);
      if (!file) continue;
      if (file.text.trim() === '') {
        problems.push(`${rel}: is empty; write the check or delete the file.`);
        continue;
      }
      const timeoutSec = checkScript(rel, file.text, problems);
      newestMtimeMs = Math.max(newestMtimeMs, file.mtimeMs);
      if (idValid) {
        checks.push({ id, category: category as Category, script: file.text, ...(timeoutSec ? { timeoutSec } : {}) });
      }
    }
  }
  if (categoriesFound === 0) {
    problems.push(
      `neither ${CATEGORIES.map((c) => `${c}/`).join(' nor ')} exists; put checks in ` +
        `${CATEGORIES.map((c) => `checks/${c}/run-xyz`).join(' or ')}.`,
    );
  } else if (runFiles === 0) {
    problems.push(`no check found: add at least one script named run-xyz under ${CATEGORIES.map((c) => `${c}/`).join(' or ')}.`);
  }

  if (problems.length > 0 || prelude === undefined) return fail();
  return { checksDir: root, prelude, checks, newestMtimeMs };
}
