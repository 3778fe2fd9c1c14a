import { describe, expect, it } from 'vitest';
import { indexNameProblem, keyPrefixProblem } from '../src/index.js';

describe('index names', () => {
  it.each(['gather-results', 'gather.results_2', 'a', '9x', 'x'.repeat(255)])('accepts %s', (name) => {
    expect(indexNameProblem(name)).toBeUndefined();
  });

  it.each(['Gather', '_errors', '-runs', '.', '..', '', 'a b', 'a/b', 'a*', 'x'.repeat(256), 'é'])(
    'refuses %j, saying how to write one',
    (name) => {
      expect(indexNameProblem(name)).toMatch(
        /^is not a valid index name: .*Use lowercase letters, digits, "\.", "_" and "-", not starting with "_" or "-"/,
      );
    },
  );
});

describe('S3 key prefixes', () => {
  it.each(['gather/prod', '/gather/prod/', 'a'])('accepts %j', (prefix) => expect(keyPrefixProblem(prefix)).toBeUndefined());
  it.each([
    ['', 'is empty'],
    ['//', 'is empty'],
    ['a//b', 'has an empty, "." or ".." path segment'],
    ['a/./b', 'has an empty, "." or ".." path segment'],
    ['../etc', 'has an empty, "." or ".." path segment'],
  ])('refuses %j', (prefix, problem) => expect(keyPrefixProblem(prefix)).toBe(problem));
});
