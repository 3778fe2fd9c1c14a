/** Runs `worker` over `items` with at most `limit` in flight; resolves when all are done. */
export async function forEachLimited<T>(items: readonly T[], limit: number, worker: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.min(Math.max(1, limit), items.length) }, async () => {
    while (next < items.length) {
      const item = items[next++]!;
      await worker(item);
    }
  });
  await Promise.all(lanes);
}

/** A counting semaphore: at most `limit` holders at once, served in order. */
export interface Slot {
  acquire(): Promise<void>;
  release(): void;
}

export function slots(limit: number): Slot {
  let free = Math.max(1, limit);
  const waiting: Array<() => void> = [];
  return {
    acquire: () => {
      if (free > 0) {
        free--;
        return Promise.resolve();
      }
      return new Promise((resolve) => waiting.push(resolve));
    },
    release: () => {
      const next = waiting.shift();
      if (next) next();
      else free++;
    },
  };
}
