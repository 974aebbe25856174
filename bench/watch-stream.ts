// One simulated node's watch: an HTTP/2 stream of newline-delimited JSON watch events. It counts
// the body bytes (no Content-Encoding is asked for, so these are the bytes the apiserver sent, less
// HTTP/2 and TLS framing) and the events (bench/watch-lines.ts). When the server ends the watch
// (e.g. it closed a watcher that fell behind) it resumes from the last resourceVersion seen, as
// client-node's ListWatch and client-go's reflector do; after an ERROR event (410: too old) it
// lists again first, and counts those bytes.
import http2, { type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2';
import { WatchLines } from './watch-lines.ts';

export interface WatchSpec {
  /** Index of the simulated node. */
  node: number;
  /** What it watches, e.g. 'cps', 'aset-node', 'pods'. */
  kind: string;
  /** The collection, e.g. /api/v1/pods. */
  base: string;
  /** Selectors and options of the watch (watch=true and resourceVersion are added). */
  query: Record<string, string>;
}

const MAX_RESUMES = 100;

function getBody(session: ClientHttp2Session, path: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':method': 'GET', ':path': path, accept: 'application/json' }, { endStream: true });
    const chunks: Buffer[] = [];
    let status = 0;
    stream.on('response', (h) => (status = Number(h[':status'])));
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => (status === 200 ? resolve(Buffer.concat(chunks)) : reject(new Error(`list ${path}: ${status}`))));
    stream.on('error', reject);
  });
}

export class WatchStream {
  readonly spec: WatchSpec;
  readonly lines: WatchLines;
  bytes = 0;
  resumes = 0;
  relists = 0;
  /** Bytes of the lists read again because a watch could not resume. */
  relistBytes = 0;
  /** Status of the last watch request. */
  status = 0;
  /** performance.now() of the last byte received. */
  lastDataAt = 0;
  /** How often the server ended the watch, by reason. */
  readonly ends: Record<string, number> = {};
  /** Set when the watch could not be reopened: it is gone for good. */
  failed?: string;
  private session?: ClientHttp2Session;
  private stream?: ClientHttp2Stream;
  private closing = false;
  private connected = false;

  constructor(spec: WatchSpec, resourceVersion: string) {
    this.spec = spec;
    this.lines = new WatchLines(resourceVersion);
  }

  get events(): number {
    return this.lines.events;
  }

  /** Open now and answered 200. */
  get live(): boolean {
    return this.connected;
  }

  /** Sends the request; resolves when the response headers arrive (or the stream fails). */
  open(session: ClientHttp2Session): Promise<void> {
    this.session = session;
    return this.connect();
  }

  /** Counters back to zero (the start of a measured phase). */
  reset(): void {
    this.bytes = this.resumes = this.relists = this.relistBytes = 0;
    this.lines.resetCounts();
    for (const k of Object.keys(this.ends)) delete this.ends[k];
  }

  close(): void {
    this.closing = true;
    this.stream?.close();
  }

  path(watch: boolean): string {
    const query = new URLSearchParams(watch ? { ...this.spec.query, watch: 'true', resourceVersion: this.lines.lastRV } : { ...this.spec.query });
    if (!watch) query.delete('allowWatchBookmarks');
    return `${this.spec.base}?${query}`;
  }

  private connect(timeoutMs = 60_000): Promise<void> {
    const session = this.session!;
    this.lines.restart();
    return new Promise((resolve) => {
      let answered = false;
      const stream = session.request({ ':method': 'GET', ':path': this.path(true), accept: 'application/json' }, { endStream: true });
      this.stream = stream;
      const timer = setTimeout(() => stream.close(http2.constants.NGHTTP2_CANCEL), timeoutMs);
      stream.on('response', (headers) => {
        clearTimeout(timer);
        answered = true;
        this.status = Number(headers[':status']);
        this.connected = this.status === 200;
        resolve();
      });
      stream.on('data', (chunk: Buffer) => {
        this.bytes += chunk.length;
        this.lastDataAt = performance.now();
        this.lines.push(chunk);
      });
      stream.on('error', () => {}); // 'close' follows
      stream.on('close', () => {
        clearTimeout(timer);
        this.connected = false;
        resolve();
        this.ended(!answered ? 'no response' : this.status === 200 ? 'closed by the server' : `status ${this.status}`);
      });
    });
  }

  private ended(reason: string): void {
    if (this.closing) return;
    this.ends[reason] = (this.ends[reason] ?? 0) + 1;
    if (this.resumes >= MAX_RESUMES || !this.session || this.session.destroyed) {
      this.failed = reason;
      return;
    }
    this.resumes++;
    const relist = this.lines.errorSeen || this.status === 410;
    void (async () => {
      try {
        if (relist) await this.relist();
        if (!this.closing) await this.connect();
      } catch (e) {
        this.failed = (e as Error).message;
      }
    })();
  }

  private async relist(): Promise<void> {
    this.lines.errorSeen = false;
    this.relists++;
    const body = await getBody(this.session!, this.path(false));
    this.relistBytes += body.length;
    this.lines.lastRV = (JSON.parse(body.toString('utf8')) as { metadata: { resourceVersion: string } }).metadata.resourceVersion;
  }
}
