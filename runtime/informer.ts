// A watch that does not give up. client-node's ListWatch stops for good on most errors and never
// relists by itself; this wrapper restarts it with back-off (one restart pending at a time),
// relists periodically on a fresh ListWatch to catch anything a half-open connection missed, and
// emits only real changes (by resourceVersion) as upserts and deletes.
import { KubeConfig, ListWatch, Watch, type KubernetesListObject, type KubernetesObject } from '@kubernetes/client-node';
import { Backoff } from './backoff.ts';
import type { Logger } from './log.ts';

export type ChangeType = 'upsert' | 'delete';
export type ChangeHandler<T> = (type: ChangeType, object: T) => void;

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
  private readonly handlers: ChangeHandler<T>[] = [];
  private readonly known = new Map<string, T>();
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
    this.handlers.push(handler);
  }

  synced(): boolean {
    return this.hasSynced;
  }

  items(): T[] {
    return [...this.known.values()];
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
    lw.on('add', (o) => this.upsert(o));
    lw.on('update', (o) => this.upsert(o));
    lw.on('delete', (o) => this.remove(o));
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
    const present = new Set(lw.list().map(keyOf));
    for (const [key, obj] of this.known) if (!present.has(key)) this.remove(obj);
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

  private upsert(obj: T): void {
    const key = keyOf(obj);
    const before = this.known.get(key);
    if (before && before.metadata?.resourceVersion === obj.metadata?.resourceVersion) return;
    this.known.set(key, obj);
    for (const h of this.handlers) h('upsert', obj);
  }

  private remove(obj: T): void {
    const key = keyOf(obj);
    const before = this.known.get(key);
    if (!before) return;
    this.known.delete(key);
    for (const h of this.handlers) h('delete', before);
  }
}

function keyOf(o: KubernetesObject): string {
  return `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;
}
