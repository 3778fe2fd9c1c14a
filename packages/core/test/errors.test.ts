import { describe, expect, it } from 'vitest';
import * as errors from '../src/errors.js';
import { LockBusyError } from '../src/lock.js';

// Another installed copy of core: the same module loaded again is a separate module instance with its own
// classes, as for an adapter installed next to the agent with its own @gather/core.
const anotherCopy: string = '../src/errors.js?another-copy';
const other = (await import(anotherCopy)) as typeof errors;

describe('gather errors keep their identity across copies of core', () => {
  it('are recognised by the marker and code, not instanceof', () => {
    const config = new other.ConfigError('bad index name');
    expect(config).not.toBeInstanceOf(errors.ConfigError);
    expect(errors.isGatherError(config)).toBe(true);
    expect(errors.ConfigError.isInstance(config)).toBe(true);
    expect(errors.FetchError.isInstance(config)).toBe(false);
    expect(errors.GatherError.isInstance(config)).toBe(true);
  });

  it('tells every class apart, the refusal reasons included', () => {
    const made = {
      usage: new other.UsageError('Unknown command "x".', { command: 'run' }),
      fetch: new other.FetchError('no such bucket'),
      export: new other.ExportError('index refused'),
      aborted: new other.AbortedError('stopped'),
      invalid: new other.ChecksInvalidError('bad checks'),
      refused: new other.BundleRefusedError('bad signature'),
      replayed: new other.BundleReplayedError('older'),
      expired: new other.BundleExpiredError('expired'),
    };
    expect(errors.UsageError.isInstance(made.usage)).toBe(true);
    expect(made.usage.command).toBe('run');
    expect(errors.FetchError.isInstance(made.fetch)).toBe(true);
    expect(errors.ExportError.isInstance(made.export)).toBe(true);
    expect(errors.AbortedError.isInstance(made.aborted)).toBe(true);
    expect(errors.ChecksInvalidError.isInstance(made.invalid)).toBe(true);
    for (const refusal of [made.refused, made.replayed, made.expired]) expect(errors.BundleRefusedError.isInstance(refusal)).toBe(true);
    expect(errors.BundleReplayedError.isInstance(made.replayed)).toBe(true);
    expect(errors.BundleReplayedError.isInstance(made.expired)).toBe(false);
    expect(errors.BundleExpiredError.isInstance(made.expired)).toBe(true);
    expect(errors.BundleRefusedError.isInstance(made.fetch)).toBe(false);
    expect(errors.UsageError.isInstance(made.fetch)).toBe(false);
  });

  it('is not fooled by look-alikes', () => {
    const plain = Object.assign(new Error('x'), { code: 'GATHER_CONFIG', name: 'ConfigError' });
    for (const value of [plain, undefined, null, 'GATHER_CONFIG', { code: 'GATHER_CONFIG' }]) {
      expect(errors.isGatherError(value)).toBe(false);
      expect(errors.ConfigError.isInstance(value)).toBe(false);
    }
  });

  it('the lock-busy error has its own code', () => {
    const busy = new LockBusyError('held by pid 1', undefined);
    expect(busy.code).toBe('GATHER_LOCK_BUSY');
    expect(LockBusyError.isInstance(busy)).toBe(true);
    expect(errors.UsageError.isInstance(busy)).toBe(false);
  });

  it('usage errors print the problem and one pointer to the help', () => {
    expect(errors.usageErrorText('gather-agent', new errors.UsageError('Unknown option "--x".', { command: 'run' }))).toBe(
      'gather-agent: Unknown option "--x".\nRun "gather-agent run --help" for the options.',
    );
    expect(errors.usageErrorText('gather-fleet', new errors.UsageError('unknown command "x"'))).toBe(
      'gather-fleet: unknown command "x"\nRun "gather-fleet --help" for the options.',
    );
  });
});
