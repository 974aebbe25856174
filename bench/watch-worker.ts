// The simulated nodes' watches on a thread of their own, so that the operator's and the churn
// client's work on the main thread never delays reading them (each agent would read on its own
// machine): RemoteWatchPool is the main thread's handle, the rest of this file runs in the worker.
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { Endpoint } from './h2.ts';
import { WatchPool } from './watch-pool.ts';
import type { WatchSpec } from './watch-stream.ts';

export interface PoolSummary {
  bytes: number;
  wireBytes: number;
  /** Fewest events any working all-pods watch has received (undefined: none watches pods). */
  minPodEvents?: number;
  /** Milliseconds since any watch last received a byte. */
  idleMs: number;
  ends: Record<string, number>;
  recovery: { resumes: number; relists: number; relistBytes: number; failed: number };
}

export interface StreamTotals { node: number; kind: string; bytes: number; events: number; failed: boolean }

interface Setup { ep: Endpoint; specs: WatchSpec[]; resourceVersion: string; nodesPerConnection: number }
type Op = 'reset' | 'summary' | 'streams' | 'loopDelay' | 'close';

export class RemoteWatchPool {
  readonly openMs: number;
  readonly notOpened: number;
  private next = 0;
  private readonly worker: Worker;
  private readonly waiting = new Map<number, (value: unknown) => void>();

  private constructor(worker: Worker, openMs: number, notOpened: number) {
    this.worker = worker;
    this.openMs = openMs;
    this.notOpened = notOpened;
    worker.on('message', (m: { id: number; result: unknown }) => this.waiting.get(m.id)?.(m.result));
  }

  static open(setup: Setup): Promise<RemoteWatchPool> {
    const worker = new Worker(new URL(import.meta.url), { workerData: setup });
    return new Promise((resolve, reject) => {
      worker.once('error', reject);
      worker.once('message', (m: { openMs?: number; notOpened?: number; error?: string }) => {
        if (m.error !== undefined) {
          void worker.terminate();
          reject(new Error(m.error));
        } else resolve(new RemoteWatchPool(worker, m.openMs!, m.notOpened!));
      });
    });
  }

  private call<T>(op: Op): Promise<T> {
    const id = this.next++;
    return new Promise<T>((resolve) => {
      this.waiting.set(id, (v) => {
        this.waiting.delete(id);
        resolve(v as T);
      });
      this.worker.postMessage({ id, op });
    });
  }

  reset = () => this.call<void>('reset');
  summary = () => this.call<PoolSummary>('summary');
  streams = () => this.call<StreamTotals[]>('streams');
  /** The watch thread's event-loop delay since the last reset: p99 and max, ms. */
  loopDelay = () => this.call<{ p99: number; max: number }>('loopDelay');

  async close(): Promise<void> {
    await Promise.race([this.call('close'), new Promise((r) => setTimeout(r, 5_000))]);
    await this.worker.terminate();
  }
}

function summarize(pool: WatchPool): PoolSummary {
  const pods = pool.streams.filter((s) => s.spec.kind === 'pods' && !s.failed);
  return {
    bytes: pool.bytes(),
    wireBytes: pool.wireBytes(),
    minPodEvents: pods.length ? Math.min(...pods.map((s) => s.events)) : undefined,
    idleMs: performance.now() - pool.lastDataAt(),
    ends: pool.ends(),
    recovery: pool.recovery(),
  };
}

async function serve(setup: Setup): Promise<void> {
  const port = parentPort!;
  let pool: WatchPool;
  try {
    pool = await WatchPool.open(setup.ep, setup.specs, setup.resourceVersion, setup.nodesPerConnection);
  } catch (e) {
    port.postMessage({ error: (e as Error).message });
    return;
  }
  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  port.postMessage({ openMs: pool.openMs, notOpened: pool.streams.filter((s) => s.status !== 200).length });
  port.on('message', ({ id, op }: { id: number; op: Op }) => {
    const reply = (result?: unknown) => port.postMessage({ id, result });
    if (op === 'reset') {
      pool.reset();
      delay.reset();
      reply();
    } else if (op === 'summary') reply(summarize(pool));
    else if (op === 'streams') reply(pool.streams.map((s) => ({ node: s.spec.node, kind: s.spec.kind, bytes: s.bytes, events: s.events, failed: !!s.failed })));
    else if (op === 'loopDelay') reply({ p99: delay.percentile(99) / 1e6, max: delay.max / 1e6 });
    else {
      pool.close();
      reply();
      port.close();
    }
  });
}

if (!isMainThread && (workerData as Setup | undefined)?.specs) void serve(workerData as Setup);
