// The simulated nodes' watches, held by this one process: the streams of `nodesPerConnection` nodes
// share an HTTP/2 connection (1 = each node its own connection, as agents have).
import type { ClientHttp2Session } from 'node:http2';
import { connect, type Endpoint } from './h2.ts';
import { WatchStream, type WatchSpec } from './watch-stream.ts';

export class WatchPool {
  readonly streams: WatchStream[];
  private readonly sessions: ClientHttp2Session[];
  /** Milliseconds from the first connect to every stream answered. */
  readonly openMs: number;

  private constructor(streams: WatchStream[], sessions: ClientHttp2Session[], openMs: number) {
    this.streams = streams;
    this.sessions = sessions;
    this.openMs = openMs;
  }

  static async open(ep: Endpoint, specs: WatchSpec[], resourceVersion: string, nodesPerConnection = 1, parallel = 64): Promise<WatchPool> {
    const started = performance.now();
    const byGroup = new Map<number, WatchSpec[]>();
    for (const spec of specs) {
      const group = Math.floor(spec.node / nodesPerConnection);
      byGroup.set(group, [...(byGroup.get(group) ?? []), spec]);
    }
    const groups = [...byGroup.values()];
    const streams: WatchStream[] = [];
    const sessions: ClientHttp2Session[] = [];
    const pool = new WatchPool(streams, sessions, 0);
    try {
      for (let i = 0; i < groups.length; i += parallel) {
        await Promise.all(groups.slice(i, i + parallel).map(async (group) => {
          const session = await connect(ep);
          sessions.push(session);
          const mine = group.map((spec) => new WatchStream(spec, resourceVersion));
          streams.push(...mine);
          await Promise.all(mine.map((s) => s.open(session)));
        }));
      }
    } catch (e) {
      pool.close();
      throw e;
    }
    return new WatchPool(streams, sessions, performance.now() - started);
  }

  reset(): void {
    for (const s of this.streams) s.reset();
  }

  bytes(): number {
    return this.streams.reduce((sum, s) => sum + s.bytes, 0);
  }

  /** TLS bytes read by every connection (HTTP/2 and TLS framing included), since it opened. */
  wireBytes(): number {
    return this.sessions.reduce((sum, s) => sum + (s.socket?.bytesRead ?? 0), 0);
  }

  lastDataAt(): number {
    return this.streams.reduce((max, s) => Math.max(max, s.lastDataAt), 0);
  }

  /** How often the server ended a watch, by reason (each was resumed unless it failed). */
  ends(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const s of this.streams) for (const [k, v] of Object.entries(s.ends)) out[k] = (out[k] ?? 0) + v;
    return out;
  }

  /** Resumes, relists (and their bytes), and watches that could not be reopened. */
  recovery(): { resumes: number; relists: number; relistBytes: number; failed: number } {
    const sum = (f: (s: WatchStream) => number) => this.streams.reduce((a, s) => a + f(s), 0);
    return { resumes: sum((s) => s.resumes), relists: sum((s) => s.relists), relistBytes: sum((s) => s.relistBytes), failed: sum((s) => (s.failed ? 1 : 0)) };
  }

  close(): void {
    for (const s of this.streams) s.close();
    for (const s of this.sessions) s.destroy();
  }
}
