/**
 * Replay and rollback protection. Every signed manifest carries a `sequence`; the agent remembers the highest
 * it accepted per bundle source and refuses a lower one, so someone who can only write to the bucket cannot
 * bring back an older (signed, but vulnerable or outdated) bundle. `expires_at` bounds how long a bundle
 * that is never replaced stays acceptable.
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { BundleExpiredError, BundleReplayedError, ConfigError } from './errors.js';
import { readStateFile, writeStateFile } from './state-file.js';
import type { BundleManifest } from './types.js';

/** The highest accepted sequence of one bundle source. */
export interface SequenceState {
  /** The highest sequence accepted so far, or undefined before the first bundle. */
  highest(): Promise<number | undefined>;
  /** Records a bundle about to be run (only raises the stored sequence, never lowers it). */
  accept(manifest: BundleManifest, sha256: string): Promise<void>;
}

/**
 * Refuses a bundle older than the highest accepted one (`BundleReplayedError`) or past its `expires_at`
 * (`BundleExpiredError`). The same sequence is fine: it is the bundle already running.
 */
export function checkFreshness(
  manifest: BundleManifest,
  options: { highestAccepted: number | undefined; now: Date; source: string },
): void {
  const { highestAccepted, now, source } = options;
  if (highestAccepted !== undefined && manifest.sequence < highestAccepted) {
    throw new BundleReplayedError(
      `Bundle refused: ${source} is bundle ${manifest.version} with sequence ${manifest.sequence}, older than sequence ` +
        `${highestAccepted} already accepted on this host (a replayed or rolled-back bundle). To roll back on purpose, ` +
        'republish the old checks under a new sequence: gather-bundle rollback --to <version> --key <private.pem>.',
    );
  }
  if (manifest.expires_at !== undefined && now.getTime() >= Date.parse(manifest.expires_at)) {
    throw new BundleExpiredError(
      `Bundle refused: ${source} is bundle ${manifest.version}, which expired at ${manifest.expires_at} ` +
        `(this host's clock says ${now.toISOString()}). Publish a fresh bundle, or check this host's clock.`,
    );
  }
}

/** `<stateDir>/bundle-sequence/<hash of the source>.json`, holding the highest sequence accepted from `sourceKey`. */
export function sequenceStatePath(stateDir: string, sourceKey: string): string {
  return join(stateDir, 'bundle-sequence', `${createHash('sha256').update(sourceKey).digest('hex').slice(0, 32)}.json`);
}

/** A SequenceState kept in a root-only file of the state dir, keyed by the normalized bundle source. */
export function createSequenceStateFile(stateDir: string, sourceKey: string): SequenceState {
  const path = sequenceStatePath(stateDir, sourceKey);
  const damaged = (why: string, cause?: unknown) =>
    new ConfigError(
      `The replay-protection state ${path} ${why}. Remove it to accept the next valid bundle of ${sourceKey} ` +
        '(protection restarts from that bundle).',
      cause === undefined ? {} : { cause },
    );
  const highest = async (): Promise<number | undefined> => {
    let text: string | undefined;
    try {
      text = await readStateFile(path);
    } catch (cause) {
      throw damaged(`cannot be read (${(cause as NodeJS.ErrnoException).code ?? cause})`, cause);
    }
    if (text === undefined) return undefined;
    let sequence: unknown;
    try {
      sequence = (JSON.parse(text) as { sequence?: unknown }).sequence;
    } catch (cause) {
      throw damaged('is not JSON', cause);
    }
    if (!Number.isSafeInteger(sequence) || (sequence as number) < 0) throw damaged('has no valid "sequence"');
    return sequence as number;
  };
  return {
    highest,
    async accept(manifest, sha256) {
      const current = await highest();
      if (current !== undefined && manifest.sequence <= current) return;
      const record = {
        source: sourceKey,
        sequence: manifest.sequence,
        version: manifest.version,
        sha256,
        accepted_at: new Date().toISOString(),
      };
      try {
        await writeStateFile(path, JSON.stringify(record) + '\n');
      } catch (cause) {
        // Not recorded means not protected: nothing runs until the state dir is writable again.
        throw new ConfigError(
          `Cannot record the accepted bundle sequence in ${path} (${(cause as NodeJS.ErrnoException).code ?? cause}); ` +
            'the state dir must be writable by the agent (--state-dir, GATHER_STATE_DIR).',
          { cause },
        );
      }
    },
  };
}
