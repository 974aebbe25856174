// One measured phase: N nodes' watches of one design open, churn at one rate for a bounded time,
// wait until the watchers have what was sent (bounded), and the servers' counters before and after.
// The watches run on a thread of their own (bench/watch-worker.ts).
import { setTimeout as sleep } from 'node:timers/promises';
import { counterTotal } from '../operator/metrics.ts';
import type { OperatorHandle } from '../operator/operator.ts';
import type { ClusterModel } from './churn-model.ts';
import { prng } from './churn-model.ts';
import { churn, eventsOf, type ChurnResult } from './churn.ts';
import type { ApiClient, Endpoint } from './h2.ts';
import { delta, snapshot, type ServerDelta } from './server-metrics.ts';
import { watchLoad } from './host-load.ts';
import { watchSpecs, type Design } from './watch-designs.ts';
import { RemoteWatchPool } from './watch-worker.ts';

export interface PhaseContext {
  ep: Endpoint;
  api: ApiClient;
  etcdUrl: string;
  model: ClusterModel;
  nodes: number;
  nodesPerConnection: number;
  operator?: OperatorHandle;
}

export interface PhaseMeasurement {
  design: Design;
  rate: number;
  churn: ChurnResult;
  server: ServerDelta;
  openSeconds: number;
  streams: number;
  notOpened: number;
  /** Body bytes and events received, by what was watched. */
  received: Record<string, { bytes: number; events: number }>;
  wireBytes: number;
  perNodeBytes: number[];
  /** CPS events received by the watchers of nodes that had no pod event. */
  quietNodeCpsEvents: number;
  /** How often the server ended a watch, by reason; each was resumed from its last resourceVersion. */
  ends: Record<string, number>;
  recovery: { resumes: number; relists: number; relistBytes: number; failed: number };
  /** Largest number of pod events the slowest all-pods watcher was behind (sampled every 250 ms). */
  maxBacklog?: number;
  drainSeconds: number;
  /** Pod events the working all-pods watchers had not received when the drain timed out. */
  undelivered?: number;
  benchCpuSeconds: number;
  /** Busy cores of the whole machine (other work included), the main thread's and the watch thread's event-loop delay. */
  host: { hostBusyCores: number; loopDelayP99Ms: number; loopDelayMaxMs: number; watchLoopDelayP99Ms: number; watchLoopDelayMaxMs: number };
  /** Bytes of CompiledPolicySet and AddressSet specs the operator sent (its own counters). */
  operatorBytes?: { cps: number; addressSets: number };
}

async function operatorBytes(op?: OperatorHandle): Promise<{ cps: number; addressSets: number } | undefined> {
  if (!op) return undefined;
  return { cps: await counterTotal(op.metrics.cpsBytes), addressSets: await counterTotal(op.metrics.asetBytes) };
}

const DRAIN_MS = 60_000;

async function currentResourceVersion(api: ApiClient): Promise<string> {
  const res = await api.ok('GET', '/api/v1/namespaces?limit=1');
  return (JSON.parse(res.body) as { metadata: { resourceVersion: string } }).metadata.resourceVersion;
}

export async function runPhase(ctx: PhaseContext, design: Design, rate: number, seconds: number): Promise<PhaseMeasurement> {
  const specs = watchSpecs(design, ctx.nodes);
  const pool = await RemoteWatchPool.open({ ep: ctx.ep, specs, resourceVersion: await currentResourceVersion(ctx.api), nodesPerConnection: ctx.nodesPerConnection });
  try {
    await sleep(2_000);
    await pool.reset();
    const wire0 = (await pool.summary()).wireBytes;
    const cpu0 = process.cpuUsage();
    const before = await snapshot(ctx.etcdUrl, ctx.api);
    const opBefore = await operatorBytes(ctx.operator);
    const load = watchLoad();
    const watchesPods = specs.some((s) => s.kind === 'pods');
    // Pod watch events the accepted writes produce: what every all-pods watcher must receive.
    let expected = 0;
    let maxBacklog = 0;
    let sampling = false;
    const sampler = setInterval(() => {
      if (sampling || !watchesPods) return;
      sampling = true;
      const due = expected;
      void pool.summary().then((s) => {
        if (s.minPodEvents !== undefined) maxBacklog = Math.max(maxBacklog, due - s.minPodEvents);
      }).finally(() => (sampling = false));
    }, 250);
    let result: ChurnResult;
    try {
      result = await churn(ctx.api, ctx.model, prng(ctx.nodes * 1000 + rate), rate, seconds, (step) => (expected += eventsOf(step)));
    } finally {
      clearInterval(sampler);
    }
    const drainStarted = performance.now();
    const drained = async () => {
      const s = await pool.summary();
      if (watchesPods) return s.minPodEvents === undefined || s.minPodEvents >= expected;
      return (ctx.operator?.idle() ?? true) && s.idleMs > 2_000 && performance.now() - drainStarted > 2_000;
    };
    while (!(await drained()) && performance.now() < drainStarted + DRAIN_MS) await sleep(50);
    const drainSeconds = (performance.now() - drainStarted) / 1000;
    const host = load.stop();
    const after = await snapshot(ctx.etcdUrl, ctx.api);
    const opAfter = await operatorBytes(ctx.operator);
    const cpu = process.cpuUsage(cpu0);
    const [summary, streams, watchLoop] = await Promise.all([pool.summary(), pool.streams(), pool.loopDelay()]);
    const received: PhaseMeasurement['received'] = {};
    const perNode = new Array<number>(ctx.nodes).fill(0);
    let quietNodeCpsEvents = 0;
    let undelivered = 0;
    for (const s of streams) {
      const r = (received[s.kind] ??= { bytes: 0, events: 0 });
      r.bytes += s.bytes;
      r.events += s.events;
      perNode[s.node] += s.bytes;
      if (s.kind === 'cps' && ctx.model.nodes[s.node].quiet) quietNodeCpsEvents += s.events;
      if (s.kind === 'pods' && !s.failed) undelivered += Math.max(0, expected - s.events);
    }
    return {
      design, rate, churn: result, server: delta(before, after),
      openSeconds: pool.openMs / 1000, streams: streams.length, notOpened: pool.notOpened,
      received, wireBytes: summary.wireBytes - wire0, perNodeBytes: perNode, quietNodeCpsEvents,
      ends: summary.ends,
      recovery: summary.recovery,
      ...(watchesPods ? { maxBacklog, undelivered } : {}),
      drainSeconds,
      benchCpuSeconds: (cpu.user + cpu.system) / 1e6,
      host: { ...host, watchLoopDelayP99Ms: watchLoop.p99, watchLoopDelayMaxMs: watchLoop.max },
      ...(opBefore && opAfter ? { operatorBytes: { cps: opAfter.cps - opBefore.cps, addressSets: opAfter.addressSets - opBefore.addressSets } } : {}),
    };
  } finally {
    await pool.close();
  }
}
