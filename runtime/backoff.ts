// Exponential back-off with jitter, for reconnects and retries that must never become a storm.
export class Backoff {
  private readonly baseMs: number;
  private readonly maxMs: number;
  private attempt = 0;

  constructor(baseMs = 1000, maxMs = 30000) {
    this.baseMs = baseMs;
    this.maxMs = maxMs;
  }

  next(): number {
    const ceiling = Math.min(this.maxMs, this.baseMs * 2 ** this.attempt++);
    return ceiling / 2 + Math.random() * (ceiling / 2);
  }

  reset(): void {
    this.attempt = 0;
  }

  get failures(): number {
    return this.attempt;
  }
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref?.());
