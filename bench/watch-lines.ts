// Reads a JSON watch stream (one event a line) without parsing it: counts the events by type from
// each line's first bytes and keeps the resourceVersion of the last whole event, where a watch
// resumes. Chunks may split lines (and the resourceVersion) anywhere.

const HEAD = 24; // {"type":"BOOKMARK" fits
const RV = Buffer.from('"resourceVersion":"');
const TAIL = 64; // the pattern and a resourceVersion fit

/** The value of the first `"resourceVersion":"…"` that lies wholly within buf[from, to). */
function findRV(buf: Buffer, from: number, to: number): string | undefined {
  const at = buf.indexOf(RV, from);
  if (at < 0 || at >= to) return undefined;
  const quote = buf.indexOf(34, at + RV.length);
  return quote >= 0 && quote < to ? buf.toString('latin1', at + RV.length, quote) : undefined;
}

export class WatchLines {
  events = 0;
  bookmarks = 0;
  errors = 0;
  /** The resourceVersion of the last whole event (or where the watch started). */
  lastRV: string;
  /** An ERROR event arrived (a Status, e.g. 410: too old); the reader clears it when it relists. */
  errorSeen = false;
  private head = '';
  private lineRV?: string;
  /** The line's last bytes while its resourceVersion is not found: it may straddle two chunks. */
  private tail = Buffer.alloc(0);

  constructor(resourceVersion: string) {
    this.lastRV = resourceVersion;
  }

  resetCounts(): void {
    this.events = this.bookmarks = this.errors = 0;
  }

  /** A new connection: a partial line of the old one is gone. */
  restart(): void {
    this.head = '';
    this.lineRV = undefined;
    this.tail = Buffer.alloc(0);
  }

  push(chunk: Buffer): void {
    let pos = 0;
    while (pos < chunk.length) {
      const nl = chunk.indexOf(10, pos);
      const end = nl < 0 ? chunk.length : nl;
      if (this.head.length < HEAD) this.head += chunk.toString('latin1', pos, Math.min(end, pos + HEAD - this.head.length));
      if (this.lineRV === undefined) this.scanRV(chunk, pos, end);
      if (nl < 0) return;
      this.classify(this.head);
      this.restart();
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
    if (type === 'ERROR') {
      this.errors++;
      this.errorSeen = true;
      return;
    }
    if (type === 'BOOKMARK') this.bookmarks++;
    else if (type) this.events++;
    if (this.lineRV) this.lastRV = this.lineRV;
  }
}
