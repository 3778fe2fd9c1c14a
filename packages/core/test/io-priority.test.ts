import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { enterBySystemCall, enterWithIonice } from '../src/io-priority.js';

// What a check started now would run in: `ionice -p` of a fresh bash names its I/O class ("idle", or
// "none: prio 4" / "best-effort: prio 4" otherwise). Checks inherit the class of the thread that starts them.
const classOfNewCheck = () => execFileSync('bash', ['-c', 'ionice -p $$'], { encoding: 'utf8' }).trim();
// Back to the best-effort class between tests (allowed to the process's owner), so each test shows its own effect.
const leaveIdleClass = () => execFileSync('ionice', ['-c2', '-n4', '-p', String(process.pid)]);
const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
const nodeHasFfi = major > 26 || (major === 26 && minor >= 1);

describe('entering the idle I/O class', () => {
  it('with `ionice -c3 -p <own pid>`, where Node has no FFI', async () => {
    leaveIdleClass();
    expect(classOfNewCheck()).not.toMatch(/^idle/);
    expect(await enterWithIonice()).toBe(true);
    expect(classOfNewCheck()).toMatch(/^idle/);
  });

  it('with the ioprio_set() system call where Node has node:ffi (26.1+), printing no ExperimentalWarning', async () => {
    leaveIdleClass();
    expect(classOfNewCheck()).not.toMatch(/^idle/);
    const warnings: string[] = [];
    const onWarning = (warning: Error) => warnings.push(`${warning.name}: ${warning.message}`);
    process.on('warning', onWarning);
    const entered = enterBySystemCall();
    // Warnings are emitted on the next tick.
    await new Promise((resolve) => setImmediate(resolve));
    process.off('warning', onWarning);
    expect(warnings).toEqual([]);
    if (!nodeHasFfi) {
      // Node 22 and 24: the caller runs ionice instead.
      expect(entered).toBeUndefined();
      return;
    }
    expect(await entered).toBe(true);
    expect(classOfNewCheck()).toMatch(/^idle/);
  });
});
