// Paces writes at a fixed rate: every tick releases the oldest operation waiting for its next write,
// or starts a new operation. Operations await slot() before each write; after the run, free() lets
// the unfinished ones complete at once.
import { setTimeout as sleep } from 'node:timers/promises';

export type Slot = () => Promise<void>;
export type Operation = (slot: Slot) => Promise<void>;

export interface PaceResult {
  seconds: number;
  /** Ticks that found nothing to release and no room for a new operation. */
  missedTicks: number;
  /** Operations still running when the drain timed out. */
  unfinished: number;
}

export class Pacer {
  private waiting: Array<() => void> = [];
  private freed = false;

  readonly slot: Slot = () => (this.freed ? Promise.resolve() : new Promise<void>((resolve) => this.waiting.push(resolve)));

  private release(): boolean {
    const next = this.waiting.shift();
    next?.();
    return next !== undefined;
  }

  /**
   * rate ticks a second for `seconds`; `next()` gives the operation a tick starts when none waits
   * (undefined: nothing to do this tick). At most maxInFlight operations run at once.
   */
  async run(rate: number, seconds: number, next: () => Operation | undefined, maxInFlight = 256, drainMs = 30_000): Promise<PaceResult> {
    const inFlight = new Set<Promise<void>>();
    const interval = 1000 / rate;
    const ticks = Math.round(rate * seconds);
    const started = performance.now();
    let missedTicks = 0;
    for (let k = 0; k < ticks; k++) {
      const wait = started + k * interval - performance.now();
      if (wait > 1) await sleep(wait);
      if (this.release()) continue;
      const op = inFlight.size < maxInFlight ? next() : undefined;
      if (!op) {
        missedTicks++;
        continue;
      }
      const running = op(this.slot).catch(() => {}).finally(() => inFlight.delete(running));
      inFlight.add(running);
      // The operation asked for its first slot synchronously, before its first await.
      if (!this.release()) missedTicks++;
    }
    const elapsed = (performance.now() - started) / 1000;
    this.freed = true;
    while (this.release());
    await Promise.race([Promise.all([...inFlight]), sleep(drainMs)]);
    return { seconds: elapsed, missedTicks, unfinished: inFlight.size };
  }
}
