// A watch response read as the apiserver writes it: one JSON event per line. The read fails when
// nothing arrives for `idleMs` (a half-open connection never ends by itself) and ends early when
// the handler asks to (the watch must relist).
import type { IncomingMessage } from 'node:http';

export type WatchEnd = 'ended' | 'stopped';

export class WatchLines<E> {
  private readonly res: IncomingMessage;
  private readonly idleMs: number;

  constructor(res: IncomingMessage, idleMs: number) {
    this.res = res;
    this.idleMs = idleMs;
  }

  /** Calls `handle` per event until the server ends the stream ('ended') or `handle` returns true ('stopped'). */
  each(handle: (event: E) => boolean): Promise<WatchEnd> {
    const res = this.res;
    return new Promise((resolve, reject) => {
      let pending = '';
      let done = false;
      const finish = (err?: Error, end?: WatchEnd) => {
        if (done) return;
        done = true;
        clearTimeout(idle);
        if (end !== 'ended') res.destroy();
        if (err) reject(err);
        else resolve(end!);
      };
      const idle = setTimeout(() => finish(new Error(`watch silent for ${this.idleMs / 1000} s`)), this.idleMs);
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        idle.refresh();
        pending += chunk;
        let newline: number;
        while (!done && (newline = pending.indexOf('\n')) >= 0) {
          const line = pending.slice(0, newline);
          pending = pending.slice(newline + 1);
          if (!line.trim()) continue;
          try {
            if (handle(JSON.parse(line) as E)) finish(undefined, 'stopped');
          } catch (e) {
            finish(e as Error);
          }
        }
      });
      res.on('end', () => finish(undefined, 'ended'));
      res.on('error', (e) => finish(e));
      res.on('close', () => finish(new Error('watch connection closed')));
    });
  }
}
