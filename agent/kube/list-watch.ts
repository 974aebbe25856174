// List, then watch from the list's resourceVersion, forever: what the agent needs of an informer.
// - A watch the server ends (its timeoutSeconds) resumes from the last version seen, bookmarks
//   included, without listing again.
// - 410 Gone (the version was compacted away) lists afresh at once; objects that vanished meanwhile
//   become deletes.
// - Any other failure lists again after a back-off that only a list that worked resets (a connect
//   alone proves nothing about a dead apiserver), with one restart pending at a time.
// - A watch silent for longer than the server's own timeout is taken for a half-open connection.
// - A rare relist (every 30 minutes or so) catches anything a lost event would otherwise hide until
//   the next change; half-open connections are caught sooner, by the silence above.
// Only real changes (by resourceVersion) reach the handlers, as upserts and deletes.
import { Backoff } from '../../runtime/backoff.ts';
import { KnownObjects, type ChangeHandler } from '../../runtime/known-objects.ts';
import type { Logger } from '../../runtime/log.ts';
import { KubeApiError, type KubeTransport } from './transport.ts';
import { WatchLines } from './watch-lines.ts';

export interface KubeObject { metadata: { name: string; namespace?: string; resourceVersion?: string } }

export interface ListWatchOptions {
  name: string;
  transport: KubeTransport;
  /** Collection path, e.g. /apis/group/version/plural. */
  path: string;
  labelSelector?: string;
  fieldSelector?: string;
  /** Safety relist period (jittered); 0 disables it. */
  relistMs?: number;
  /** Server-side watch timeout range in seconds (client-go picks 5–10 minutes). */
  watchSeconds?: [number, number];
  /** How long past its timeout a silent watch is trusted before it is taken for a dead connection. */
  idleGraceMs?: number;
  log: Logger;
}

interface ListBody<T> { metadata?: { resourceVersion?: string; continue?: string }; items?: T[] }
interface WatchEvent<T> { type: string; object: T & { code?: number; message?: string } }

const PAGE = 500;

export class ListWatcher<T extends KubeObject> {
  private readonly opts: ListWatchOptions;
  private readonly known = new KnownObjects<T>();
  private readonly backoff = new Backoff();
  private resourceVersion?: string;
  /** Aborts the current list or watch; replaced on every (re)start. */
  private current = new AbortController();
  private restartTimer?: NodeJS.Timeout;
  private relistTimer?: NodeJS.Timeout;
  private stopped = false;
  private hasSynced = false;
  restarts = 0;

  constructor(opts: ListWatchOptions) {
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
        await this.list(this.fresh());
        break;
      } catch (e) {
        if (this.stopped) return;
        const delay = this.backoff.next();
        this.opts.log.warn({ informer: this.opts.name, err: (e as Error).message, retryMs: Math.round(delay) }, 'initial list failed');
        await new Promise((r) => setTimeout(r, delay));
      }
    }
    if (this.stopped) return;
    this.hasSynced = true;
    this.scheduleRelist();
    void this.watch(this.current.signal);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.restartTimer);
    clearTimeout(this.relistTimer);
    this.current.abort();
  }

  /** Lists afresh (ending the watch in flight) and watches on from there. */
  async relist(): Promise<void> {
    if (this.stopped) return;
    const signal = this.fresh();
    try {
      await this.list(signal);
    } catch (e) {
      if (!signal.aborted) this.scheduleRestart(e as Error);
      return;
    }
    void this.watch(signal);
  }

  /** The safety relist, jittered ±25 % so agents started together do not list together. */
  private scheduleRelist(): void {
    if (!this.opts.relistMs || this.stopped) return;
    this.relistTimer = setTimeout(() => {
      this.scheduleRelist();
      void this.relist();
    }, this.opts.relistMs * (0.75 + Math.random() / 2));
  }

  private fresh(): AbortSignal {
    this.current.abort();
    this.current = new AbortController();
    return this.current.signal;
  }

  private query(extra: Record<string, string>): string {
    const q = new URLSearchParams();
    if (this.opts.labelSelector) q.set('labelSelector', this.opts.labelSelector);
    if (this.opts.fieldSelector) q.set('fieldSelector', this.opts.fieldSelector);
    for (const [k, v] of Object.entries(extra)) q.set(k, v);
    return `${this.opts.path}?${q}`;
  }

  private async list(signal: AbortSignal): Promise<void> {
    const items: T[] = [];
    let token: string | undefined;
    let version: string | undefined;
    do {
      const page = await this.opts.transport.request<ListBody<T>>('GET', this.query({ limit: String(PAGE), ...(token ? { continue: token } : {}) }), { signal });
      items.push(...(page.items ?? []));
      token = page.metadata?.continue || undefined;
      version = page.metadata?.resourceVersion;
    } while (token);
    if (signal.aborted) return;
    this.backoff.reset();
    this.resourceVersion = version;
    this.known.replace(items);
  }

  private async watch(signal: AbortSignal): Promise<void> {
    const [low, high] = this.opts.watchSeconds ?? [300, 600];
    while (!signal.aborted) {
      const seconds = Math.round(low + Math.random() * (high - low));
      const path = this.query({ watch: 'true', allowWatchBookmarks: 'true', timeoutSeconds: String(seconds), ...(this.resourceVersion ? { resourceVersion: this.resourceVersion } : {}) });
      const began = performance.now();
      let events = 0;
      try {
        const res = await this.opts.transport.stream(path, signal);
        const end = await new WatchLines<WatchEvent<T>>(res, seconds * 1000 + (this.opts.idleGraceMs ?? 30_000)).each((e) => (events++, this.event(e)));
        if (end === 'stopped') return void this.relistSoon(signal, 'resourceVersion too old (410 Gone)');
        // A watch asked to last minutes that ends at once, empty, is failing, not timing out.
        if (events === 0 && performance.now() - began < 1000) throw new Error('watch ended as soon as it began');
      } catch (e) {
        if (signal.aborted) return;
        if (e instanceof KubeApiError && e.code === 410) return void this.relistSoon(signal, e.message);
        this.scheduleRestart(e as Error);
        return;
      }
    }
  }

  /** Handles one event; true when the watch must end with a relist (410 Gone). */
  private event(e: WatchEvent<T>): boolean {
    if (e.type === 'ERROR') {
      if (e.object.code === 410) return true;
      throw new KubeApiError(e.object.code ?? 500, e.object.message ?? 'watch error');
    }
    const version = e.object.metadata?.resourceVersion;
    if (version) this.resourceVersion = version;
    if (e.type === 'ADDED' || e.type === 'MODIFIED') this.known.upsert(e.object);
    else if (e.type === 'DELETED') this.known.remove(e.object);
    return false;
  }

  private relistSoon(signal: AbortSignal, why: string): void {
    if (signal.aborted) return;
    this.opts.log.info({ informer: this.opts.name, why }, 'relisting');
    void this.relist();
  }

  private scheduleRestart(err: Error): void {
    if (this.stopped || this.restartTimer) return;
    this.current.abort();
    const delay = this.backoff.next();
    this.restarts++;
    this.opts.log.warn({ informer: this.opts.name, err: err.message, retryMs: Math.round(delay) }, 'watch stopped; restarting');
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      void this.relist();
    }, delay);
  }
}
