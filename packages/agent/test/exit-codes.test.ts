import { AbortedError, BundleRefusedError, ConfigError, FetchError, LockBusyError, UsageError } from '@gather/core';
import { describe, expect, it } from 'vitest';
import { EXIT, exitCodeForError, exitCodeOf, outcomeOf, OUTCOME_EXIT, type RunFacts } from '../src/exit-codes.js';

const clean = { spooled: 0, failed: 0, dead_lettered: 0, dropped: 0, unreadable: 0 };

describe('the one mapping from how a run ended to its exit code', () => {
  it.each<[string, RunFacts, string, number]>([
    ['everything delivered', { export: clean }, 'ok', 0],
    ['a check failed', { export: clean, checksFailed: 1 }, 'checks_failed', 5],
    ['documents spooled', { export: { ...clean, spooled: 4 }, checksFailed: 1 }, 'spooled', 7],
    ['a document dead-lettered', { export: { ...clean, dead_lettered: 1, spooled: 3 } }, 'export_incomplete', 6],
    ['documents dropped from a full spool', { export: { ...clean, dropped: 10, failed: 10 } }, 'export_incomplete', 6],
    ['an unreadable spool line', { export: { ...clean, unreadable: 1, failed: 1 } }, 'export_incomplete', 6],
    ['the exporter failed', { exportFailed: true, export: { ...clean, spooled: 3 } }, 'export_failed', 6],
    ['a stop after the checks', { interrupted: true, export: { ...clean, dead_lettered: 1 } }, 'interrupted', 130],
    ['a stop during the checks', { error: new AbortedError('stopped') }, 'interrupted', 130],
    ['a refused bundle', { error: new BundleRefusedError('bad signature') }, 'bundle_refused', 3],
    ['a fetch failure', { error: new FetchError('no such bucket') }, 'fetch_failed', 4],
    ['a bug', { error: new Error('boom') }, 'failed', 1],
  ])('%s: outcome %s, exit %i', (_what, facts, outcome, code) => {
    expect(outcomeOf(facts)).toBe(outcome);
    expect(exitCodeOf(facts)).toBe(code);
  });

  it('maps every outcome, and errors thrown before a run', () => {
    expect(Object.keys(OUTCOME_EXIT).sort()).toEqual([
      'bundle_expired',
      'bundle_refused',
      'bundle_replayed',
      'checks_failed',
      'export_failed',
      'export_incomplete',
      'failed',
      'fetch_failed',
      'interrupted',
      'ok',
      'spooled',
    ]);
    expect([OUTCOME_EXIT.bundle_replayed, OUTCOME_EXIT.bundle_expired]).toEqual([EXIT.BUNDLE_REFUSED, EXIT.BUNDLE_REFUSED]);
    expect(exitCodeForError(new ConfigError('bad'))).toBe(EXIT.USAGE);
    expect(exitCodeForError(new AbortedError('stopped'))).toBe(EXIT.INTERRUPTED);
  });

  it('maps errors by their code, whichever copy of core made them', () => {
    expect(exitCodeForError(new UsageError('Unknown command "x".'))).toBe(EXIT.USAGE);
    expect(exitCodeForError(new LockBusyError('held', undefined))).toBe(EXIT.LOCKED);
    // What an exporter installed with its own @gather/core throws: no instance of this copy's classes.
    const marker = Symbol.for('gather.error');
    const foreign = (code: string, extra: object = {}) => Object.assign(new Error(`[gather] ${code}`), { [marker]: true, code, ...extra });
    expect(exitCodeForError(foreign('GATHER_CONFIG'))).toBe(EXIT.USAGE);
    expect(exitCodeForError(foreign('GATHER_FETCH'))).toBe(EXIT.FETCH_FAILED);
    expect(exitCodeForError(foreign('GATHER_BUNDLE_REFUSED', { reason: 'bundle_replayed' }))).toBe(EXIT.BUNDLE_REFUSED);
    expect(outcomeOf({ error: foreign('GATHER_BUNDLE_REFUSED', { reason: 'bundle_replayed' }) })).toBe('bundle_replayed');
    expect(exitCodeForError(foreign('GATHER_ABORTED'))).toBe(EXIT.INTERRUPTED);
    expect(exitCodeForError(foreign('GATHER_LOCK_BUSY'))).toBe(EXIT.LOCKED);
  });
});
