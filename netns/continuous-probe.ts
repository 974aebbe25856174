// A probe that never stops: one process in the source pod's netns attempts a TCP connection to the
// target every few milliseconds (probe-loop.ts). A one-shot probe starts a Node process each time
// (tens of ms) and waits out its timeout, which is what it measured more than the dataplane.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { NODE_BIN } from './ip.ts';
import { track, untrack, type SyncDestroyable } from './lifecycle.ts';

const LOOP = fileURLToPath(new URL('./probe-loop.ts', import.meta.url));

export interface Attempt { startedAt: number; open: boolean }

export class ContinuousProbe implements SyncDestroyable {
  private readonly child: ChildProcess;
  private readonly attempts: Attempt[] = [];
  private readonly listeners = new Set<() => void>();

  constructor(netns: string, target: { ip: string; port: number }, everyMs = 10, timeoutMs = 200) {
    this.child = spawn('ip', ['netns', 'exec', netns, NODE_BIN, LOOP, JSON.stringify({ ...target, everyMs, timeoutMs })], { stdio: ['ignore', 'pipe', 'inherit'] });
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      const [at, ok] = line.split(' ');
      this.attempts.push({ startedAt: Number(at), open: ok === '1' });
      for (const l of this.listeners) l();
    });
    track(this);
  }

  /**
   * The wall-clock ms from `since` to the start of the first attempt that saw `open` and after which
   * no attempt saw the old verdict again; resolves once such an attempt is followed by `confirm` more.
   */
  seen(since: number, open: boolean, confirm = 3, timeoutMs = 10_000): Promise<number> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const after = this.attempts.filter((a) => a.startedAt >= since).sort((a, b) => a.startedAt - b.startedAt);
        const lastOld = after.findLastIndex((a) => a.open !== open);
        const fresh = after.slice(lastOld + 1);
        if (fresh.length > confirm) finish(() => resolve(fresh[0].startedAt - since));
      };
      const finish = (f: () => void): void => {
        this.listeners.delete(check);
        clearTimeout(timer);
        f();
      };
      const timer = setTimeout(() => finish(() => reject(new Error(`no probe saw ${open ? 'open' : 'closed'} within ${timeoutMs} ms`))), timeoutMs);
      this.listeners.add(check);
      check();
    });
  }

  /** Forgets attempts started before `before` (memory stays bounded over a long run). */
  forget(before: number): void {
    const keep = this.attempts.filter((a) => a.startedAt >= before);
    this.attempts.length = 0;
    this.attempts.push(...keep);
  }

  stop(): void {
    this.destroySync();
  }

  destroySync(): void {
    this.child.kill('SIGKILL');
    untrack(this);
  }
}
