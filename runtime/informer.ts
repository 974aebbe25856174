// A watch that does not give up. client-node's ListWatch stops for good on most errors and never
// relists by itself; this wrapper restarts it with back-off (one restart pending at a time),
// relists periodically on a fresh ListWatch to catch anything a half-open connection missed, and
// emits only real changes (by resourceVersion) as upserts and deletes.
import { KubeConfig, ListWatch, Watch, type KubernetesListObject, type KubernetesObject } from '@kubernetes/client-node';
import { Backoff } from './backoff.ts';
import { KnownObjects, type ChangeHandler } from './known-objects.ts';
import type { Logger } from './log.ts';

export type { ChangeHandler, ChangeType } from './known-objects.ts';

export interface InformerOptions<T extends KubernetesObject> {
  name: string;
  kc: KubeConfig;
  path: string;
  list: () => Promise<KubernetesListObject<T>>;
  labelSelector?: string;
  fieldSelector?: string;
  /** Safety relist period; 0 disables it. */
  relistMs?: number;
  log: Logger;
}

export class ResilientInformer<T extends KubernetesObject> {
  private readonly opts: InformerOptions<T>;
  private readonly known = new KnownObjects<T>();
  private readonly backoff = new Backoff();
  private lw?: ListWatch<T>;
  private restartTimer?: NodeJS.Timeout;
  private relistTimer?: NodeJS.Timeout;
  private stopped = false;
  private hasSynced = false;
  restarts = 0;

  constructor(opts: InformerOptions<T>) {
    this.opts = opts;
  }

  onChange(handler: ChangeHandler<T>): void {
    this.known.onChange(handler);
  }

  synced(): boolean {
    return this.hasSynced;
  }

  items(): T[] {
    return this.known.items();
  }

  /** Resolves once the first list has been delivered; retries until it succeeds or stop() is called. */
  async start(): Promise<void> {
    this.stopped = false;
    while (!this.stopped) {
      try {
        await this.connect();
        this.hasSynced = true;
        if (this.opts.relistMs) this.relistTimer = setInterval(() => void this.relist(), this.opts.relistMs);
        return;
      } catch (e) {
        const delay = this.backoff.next();
        this.opts.log.warn({ informer: this.opts.name, err: (e as Error).message, retryMs: Math.round(delay) }, 'initial list failed');
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.restartTimer);
    clearInterval(this.relistTimer);
    await this.lw?.stop();
  }

  /** Lists afresh on a new ListWatch and turns objects that vanished meanwhile into deletes. */
  async relist(): Promise<void> {
    if (this.stopped) return;
    await this.lw?.stop();
    try {
      await this.connect();
    } catch (e) {
      this.scheduleRestart(e as Error);
    }
  }

  private async connect(): Promise<void> {
    const { kc, path, list, labelSelector, fieldSelector } = this.opts;
    const lw = new ListWatch<T>(path, new Watch(kc), list, false, labelSelector, fieldSelector);
    let listFailed: Error | undefined;
    lw.on('add', (o) => this.known.upsert(o));
    lw.on('update', (o) => this.known.upsert(o));
    lw.on('delete', (o) => this.known.remove(o));
    lw.on('error', (err) => {
      listFailed = err as Error;
      if (this.lw === lw && this.hasSynced) this.scheduleRestart(err as Error);
    });
    this.lw = lw;
    await lw.start();
    if (listFailed) throw listFailed;
    // Only a list that worked ends the back-off: ListWatch announces 'connect' before it lists, so
    // resetting there retried a dead apiserver every half second, however long it stayed down.
    this.backoff.reset();
    this.known.replace(lw.list());
  }

  private scheduleRestart(err: Error): void {
    if (this.stopped || this.restartTimer) return;
    const delay = this.backoff.next();
    this.restarts++;
    this.opts.log.warn({ informer: this.opts.name, err: err.message, retryMs: Math.round(delay) }, 'watch stopped; restarting');
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      void this.relist();
    }, delay);
  }
}
