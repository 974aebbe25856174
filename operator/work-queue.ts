// A level-triggered queue of keys (node names): a key waits at most once however often it is added,
// at most `concurrency` keys are worked on at once, and never the same key twice at a time (a key
// added while it is being worked on runs again afterwards, with the latest state). Each pending key
// remembers when it was first added, for event-to-write latency. Retries go through retryLater,
// which keeps at most one timer per key, so a failing key can never spin.

export type Worker = (key: string, since: number) => Promise<void>;

export class KeyedWorkQueue {
  private readonly worker: Worker;
  private readonly concurrency: number;
  private readonly pending = new Map<string, number>();
  private readonly running = new Map<string, Promise<void>>();
  private readonly retryTimers = new Map<string, NodeJS.Timeout>();
  private readonly waiters = new Map<string, Array<() => void>>();
  private paused = true;

  constructor(worker: Worker, concurrency: number) {
    this.worker = worker;
    this.concurrency = concurrency;
  }

  /** Keys waiting or being worked on. */
  get depth(): number {
    return this.pending.size + this.running.size;
  }

  idle(): boolean {
    return this.depth === 0 && this.retryTimers.size === 0;
  }

  add(key: string, since = performance.now()): void {
    const before = this.pending.get(key);
    this.pending.set(key, before === undefined ? since : Math.min(before, since));
    this.pump();
  }

  /** Adds the key again after delayMs, unless a retry of it is already scheduled. */
  retryLater(key: string, since: number, delayMs: number): void {
    if (this.retryTimers.has(key)) return;
    const timer = setTimeout(() => {
      this.retryTimers.delete(key);
      this.add(key, since);
    }, delayMs);
    timer.unref?.();
    this.retryTimers.set(key, timer);
  }

  resume(): void {
    this.paused = false;
    this.pump();
  }

  /** Stops starting work; what runs finishes. */
  pause(): void {
    this.paused = true;
  }

  /** Forgets pending keys and scheduled retries. */
  clear(): void {
    const keys = [...this.pending.keys()];
    this.pending.clear();
    for (const key of keys) if (!this.running.has(key)) this.release(key);
    for (const timer of this.retryTimers.values()) clearTimeout(timer);
    this.retryTimers.clear();
  }

  /** Resolves once the key is neither waiting nor being worked on (a retry scheduled for later does not count). */
  settled(key: string): Promise<void> {
    if (!this.pending.has(key) && !this.running.has(key)) return Promise.resolve();
    return new Promise((resolve) => {
      let list = this.waiters.get(key);
      if (!list) this.waiters.set(key, (list = []));
      list.push(resolve);
    });
  }

  /** Resolves when nothing runs any more (pause first to keep it that way). */
  async drain(): Promise<void> {
    while (this.running.size) await Promise.allSettled([...this.running.values()]);
  }

  private pump(): void {
    if (this.paused) return;
    for (const [key, since] of this.pending) {
      if (this.running.size >= this.concurrency) return;
      if (this.running.has(key)) continue;
      this.pending.delete(key);
      this.start(key, since);
    }
  }

  private start(key: string, since: number): void {
    const run = this.worker(key, since)
      .catch(() => undefined)
      .finally(() => {
        this.running.delete(key);
        if (!this.pending.has(key)) this.release(key);
        this.pump();
      });
    this.running.set(key, run);
  }

  private release(key: string): void {
    const list = this.waiters.get(key);
    this.waiters.delete(key);
    for (const resolve of list ?? []) resolve();
  }
}
