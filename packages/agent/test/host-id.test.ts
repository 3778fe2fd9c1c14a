import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { hostIdentity } from '../src/host-id.js';
import { tempDir } from './_helpers.js';

describe('host identity (host.id)', () => {
  it('is the configured id, else the first valid machine id, else undefined', () => {
    const dir = tempDir();
    const bad = join(dir, 'bad');
    const good = join(dir, 'good');
    writeFileSync(bad, 'not-a-machine-id\n');
    writeFileSync(good, '0123456789abcdef0123456789abcdef\n');
    expect(hostIdentity('configured-id', [good])).toBe('configured-id');
    expect(hostIdentity(undefined, [join(dir, 'missing'), bad, good])).toBe('0123456789abcdef0123456789abcdef');
    expect(hostIdentity(undefined, [join(dir, 'missing'), bad])).toBeUndefined();
  });
});
