// The published layout (pointer format, keys) and reading a bundle's version from its manifest.
import { describe, expect, it } from 'vitest';
import { makeBundle, makeKeys } from '@gather/core/testing';
import { normalizePrefix, parsePointer, pointerKey, serializePointer, versionKey } from '../src/_layout.js';
import { readBundleManifest } from '../src/publish/manifest.js';
import { bundle, tar } from './_helpers.js';

const SHA = 'a'.repeat(64);

describe('keys under a prefix', () => {
  it('bundles at <prefix>/<version>.tar, the pointer at <prefix>/latest; slashes trimmed', () => {
    const prefix = normalizePrefix('/gather/prod/');
    expect(prefix).toBe('gather/prod');
    expect(versionKey(prefix, '1.2.3')).toBe('gather/prod/1.2.3.tar');
    expect(pointerKey(prefix)).toBe('gather/prod/latest');
  });

  it('refuses an empty prefix or one with empty, "." or ".." segments', () => {
    expect(() => normalizePrefix('')).toThrow('Missing option "prefix"');
    expect(() => normalizePrefix('a//b')).toThrow('Invalid option "prefix"');
    expect(() => normalizePrefix('a/../b')).toThrow('Invalid option "prefix"');
  });
});

describe('the pointer', () => {
  it('round-trips the JSON written by publish', () => {
    const pointer = {
      format: 1 as const,
      version: '1.2.3',
      key: 'p/1.2.3.tar',
      sha256: SHA,
      size: 10,
      published: '2026-01-01T00:00:00.000Z',
    };
    expect(parsePointer(serializePointer(pointer), 'p')).toEqual(pointer);
  });

  it('accepts a hand-written pointer holding just the version', () => {
    expect(parsePointer('2024.06.01-1\n', 'p')).toEqual({ format: 1, version: '2024.06.01-1', key: 'p/2024.06.01-1.tar' });
  });

  it('cannot send agents to a key outside <prefix>/<version>.tar', () => {
    expect(() => parsePointer(JSON.stringify({ version: '1', key: 'other/evil.tar' }), 'p')).toThrow('is not p/1.tar');
    expect(() => parsePointer('../../etc', 'p')).toThrow('not valid');
    expect(() => parsePointer('..', 'p')).toThrow('not valid');
  });

  it('refuses malformed fields', () => {
    expect(() => parsePointer('{"version": 1}', 'p')).toThrow('version');
    expect(() => parsePointer('{"version": "1", "sha256": "xyz"}', 'p')).toThrow('sha256');
    expect(() => parsePointer('{"version": "1", "size": -1}', 'p')).toThrow('size');
    expect(() => parsePointer('{not json', 'p')).toThrow('not JSON');
  });
});

describe('reading the version from a bundle', () => {
  it('reads manifest.json from the tar', () => {
    expect(readBundleManifest(bundle('2024.06.01-1')).version).toBe('2024.06.01-1');
  });

  it('refuses what is not a bundle, or a version that cannot be a key', () => {
    expect(() => readBundleManifest(Buffer.from('hello'))).toThrow('not a gather bundle');
    expect(() => readBundleManifest(tar([{ name: 'runner.js', data: 'x' }]))).toThrow('no manifest.json');
    expect(() => readBundleManifest(tar([{ name: 'manifest.json', data: '{' }]))).toThrow('not JSON');
    expect(() => readBundleManifest(tar([{ name: 'manifest.json', data: '{"version":"../x"}' }]))).toThrow('Invalid version');
    const truncated = bundle('1.0.0').subarray(0, 700);
    expect(() => readBundleManifest(truncated)).toThrow('truncated');
  });

  it('with a public key, verifies the signature first (core verifyBundle)', () => {
    const keys = makeKeys();
    const signed = makeBundle({ keys, checks: [], version: '9.0.0' });
    expect(readBundleManifest(signed, { publicKeyPem: keys.publicKeyPem }).version).toBe('9.0.0');
    expect(() => readBundleManifest(signed, { publicKeyPem: makeKeys().publicKeyPem })).toThrow(/signature/i);
  });
});
