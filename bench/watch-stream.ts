// One simulated node's watch: an HTTP/2 stream of newline-delimited JSON watch events. It counts
// the body bytes (no Content-Encoding is asked for, so these are the bytes the apiserver sent, less
// HTTP/2 and TLS framing) and the events by type, reading only the first bytes of each line and the
// object's resourceVersion. When the server ends the watch (e.g. it closed a watcher that fell
// behind) it resumes from the last resourceVersion seen, as client-node's ListWatch and client-go's
// reflector do; after an ERROR event (410: too old) it lists again first, and counts those bytes.
import http2, { type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2';

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

const HEAD = 24; // {"type":"BOOKMARK" fits
const RV = Buffer.from('"resourceVersion":"');
const MAX_RESUMES = 100;
const TAIL = 64; // the pattern and a resourceVersion fit

/** The value of the first `"resourceVersion":"…"` that lies wholly within buf[from, to). */
function findRV(buf: Buffer, from: number, to: number): string | undefined {
  const at = buf.indexOf(RV, from);
  if (at < 0 || at >= to) return undefined;
  const quote = buf.indexOf(34, at + RV.length);
  return quote >= 0 && quote < to ? buf.toString('latin1', at + RV.length, quote) : undefined;
}

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
  bytes = 0;
  events = 0;
  bookmarks = 0;
  errors = 0;
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
  private lastRV: string;
  private head = '';
  private lineRV?: string;
  /** The line's last bytes while its resourceVersion is not found: it may straddle two chunks. */
  private tail = Buffer.alloc(0);
  private relistNeeded = false;
  private session?: ClientHttp2Session;
  private stream?: ClientHttp2Stream;
  private closing = false;
  private connected = false;

  constructor(spec: WatchSpec, resourceVersion: string) {
    this.spec = spec;
    this.lastRV = resourceVersion;
  }

  /** Sends the request; resolves when the response headers arrive (or the stream fails). */
  open(session: ClientHttp2Session): Promise<void> {
    this.session = session;
    return this.connect();
  }

  /** Counters back to zero (the start of a measured phase). */
  reset(): void {
    this.bytes = this.events = this.bookmarks = this.errors = this.resumes = this.relists = this.relistBytes = 0;
    for (const k of Object.keys(this.ends)) delete this.ends[k];
  }

  close(): void {
    this.closing = true;
    this.stream?.close();
  }

  /** Open now and answered 200. */
  get live(): boolean {
    return this.connected;
  }

  private path(watch: boolean): string {
    const query = new URLSearchParams(watch ? { ...this.spec.query, watch: 'true', resourceVersion: this.lastRV } : { ...this.spec.query });
    if (!watch) query.delete('allowWatchBookmarks');
    return `${this.spec.base}?${query}`;
  }

  private connect(timeoutMs = 60_000): Promise<void> {
    const session = this.session!;
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
      stream.on('data', (chunk: Buffer) => this.consume(chunk));
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
    const relist = this.relistNeeded || this.status === 410;
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
    this.relistNeeded = false;
    this.relists++;
    const body = await getBody(this.session!, this.path(false));
    this.relistBytes += body.length;
    this.lastRV = (JSON.parse(body.toString('utf8')) as { metadata: { resourceVersion: string } }).metadata.resourceVersion;
  }

  private consume(chunk: Buffer): void {
    this.bytes += chunk.length;
    this.lastDataAt = performance.now();
    let pos = 0;
    while (pos < chunk.length) {
      const nl = chunk.indexOf(10, pos);
      const end = nl < 0 ? chunk.length : nl;
      if (this.head.length < HEAD) this.head += chunk.toString('latin1', pos, Math.min(end, pos + HEAD - this.head.length));
      if (this.lineRV === undefined) this.scanRV(chunk, pos, end);
      if (nl < 0) return;
      this.classify(this.head);
      if (this.lineRV) this.lastRV = this.lineRV;
      this.head = '';
      this.lineRV = undefined;
      this.tail = Buffer.alloc(0);
      pos = nl + 1;
    }
  }

  /** The first resourceVersion of a line is the object's (metadata precedes everything that could hold another). */
  private scanRV(chunk: Buffer, pos: number, end: number): void {
    if (this.tail.length) {
      const seam = Buffer.concat([this.tail, chunk.subarray(pos, Math.min(end, pos + TAIL))]);
      this.lineRV = findRV(seam, 0, seam.length);
    }
    this.lineRV ??= findRV(chunk, pos, end);
    if (this.lineRV !== undefined) return;
    const piece = chunk.subarray(Math.max(pos, end - TAIL), end);
    this.tail = Buffer.from(Buffer.concat([this.tail, piece]).subarray(-TAIL));
  }

  private classify(head: string): void {
    const type = /"type":"(\w+)"/.exec(head)?.[1];
    if (type === 'BOOKMARK') this.bookmarks++;
    else if (type === 'ERROR') {
      this.errors++;
      this.relistNeeded = true;
    } else if (type) this.events++;
  }
}
