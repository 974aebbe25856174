// One simulated node's watch: an HTTP/2 stream of newline-delimited JSON watch events. It counts
// the body bytes (no Content-Encoding is asked for, so these are the bytes the apiserver sent, less
// HTTP/2 and TLS framing) and the events by type, reading only the first bytes of each line.
import type { ClientHttp2Session, ClientHttp2Stream } from 'node:http2';

export interface WatchSpec {
  /** Index of the simulated node. */
  node: number;
  /** What it watches, e.g. 'cps', 'aset-node', 'pods'. */
  kind: string;
  /** Path and query, including watch=true and the resourceVersion to start from. */
  path: string;
}

const HEAD = 24; // {"type":"BOOKMARK" fits

export class WatchStream {
  readonly spec: WatchSpec;
  bytes = 0;
  events = 0;
  bookmarks = 0;
  errors = 0;
  status = 0;
  /** performance.now() of the last byte received. */
  lastDataAt = 0;
  /** Set when the server ended the stream or it failed (not when we closed it). */
  endedBy?: string;
  private head = '';
  private stream?: ClientHttp2Stream;
  private closing = false;

  constructor(spec: WatchSpec) {
    this.spec = spec;
  }

  /** Sends the request; resolves when the response headers arrive (or the stream fails). */
  open(session: ClientHttp2Session, timeoutMs = 60_000): Promise<void> {
    return new Promise((resolve) => {
      const stream = session.request({ ':method': 'GET', ':path': this.spec.path, accept: 'application/json' }, { endStream: true });
      this.stream = stream;
      const timer = setTimeout(() => this.fail('no response headers', resolve), timeoutMs);
      stream.on('response', (headers) => {
        clearTimeout(timer);
        this.status = Number(headers[':status']);
        if (this.status !== 200) this.endedBy = `status ${this.status}`;
        resolve();
      });
      stream.on('data', (chunk: Buffer) => this.consume(chunk));
      stream.on('error', (e) => this.fail(e.message, resolve));
      stream.on('close', () => {
        clearTimeout(timer);
        if (!this.closing && !this.endedBy) this.endedBy = 'closed by the server';
        resolve();
      });
    });
  }

  /** Counters back to zero (the start of a measured phase). */
  reset(): void {
    this.bytes = this.events = this.bookmarks = this.errors = 0;
  }

  close(): void {
    this.closing = true;
    this.stream?.close();
  }

  get live(): boolean {
    return this.status === 200 && !this.endedBy;
  }

  private fail(message: string, resolve: () => void): void {
    if (!this.closing && !this.endedBy) this.endedBy = message;
    resolve();
  }

  private consume(chunk: Buffer): void {
    this.bytes += chunk.length;
    this.lastDataAt = performance.now();
    let pos = 0;
    while (pos < chunk.length) {
      const nl = chunk.indexOf(10, pos);
      const end = nl < 0 ? chunk.length : nl;
      if (this.head.length < HEAD) this.head += chunk.toString('latin1', pos, Math.min(end, pos + HEAD - this.head.length));
      if (nl < 0) return;
      this.classify(this.head);
      this.head = '';
      pos = nl + 1;
    }
  }

  private classify(head: string): void {
    const type = /"type":"(\w+)"/.exec(head)?.[1];
    if (type === 'BOOKMARK') this.bookmarks++;
    else if (type === 'ERROR') this.errors++;
    else if (type) this.events++;
  }
}
