// One measured phase: N nodes' watches of one design open, churn at one rate for a bounded time,
// wait until the watchers have what was sent (bounded), and the servers' counters before and after.
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
import { WatchPool } from './watch-pool.ts';

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
  /** Busy cores of the whole machine (other work included) and this process's event-loop delay. */
  host: { hostBusyCores: number; loopDelayP99Ms: number; loopDelayMaxMs: number };
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
  const pool = await WatchPool.open(ctx.ep, watchSpecs(design, ctx.nodes), await currentResourceVersion(ctx.api), ctx.nodesPerConnection);
  try {
    const notOpened = pool.streams.filter((s) => s.status !== 200).length;
    await sleep(2_000);
    pool.reset();
    const wire0 = pool.wireBytes();
    const cpu0 = process.cpuUsage();
    const before = await snapshot(ctx.etcdUrl, ctx.api);
    const opBefore = await operatorBytes(ctx.operator);
    const load = watchLoad();
    const podStreams = pool.streams.filter((s) => s.spec.kind === 'pods');
    // Pod watch events the accepted writes produce: what every all-pods watcher must receive.
    let expected = 0;
    let maxBacklog = 0;
    const sampler = setInterval(() => {
      const live = podStreams.filter((s) => !s.failed);
      if (live.length) maxBacklog = Math.max(maxBacklog, expected - Math.min(...live.map((s) => s.events)));
    }, 250);
    let result: ChurnResult;
    try {
      result = await churn(ctx.api, ctx.model, prng(ctx.nodes * 1000 + rate), rate, seconds, (step) => (expected += eventsOf(step)));
    } finally {
      clearInterval(sampler);
    }
    const drainStarted = performance.now();
    const deadline = drainStarted + DRAIN_MS;
    const drained = () => podStreams.length
      ? podStreams.every((s) => s.failed || s.events >= expected)
      : (ctx.operator?.idle() ?? true) && performance.now() - Math.max(pool.lastDataAt(), drainStarted) > 2_000;
    while (!drained() && performance.now() < deadline) await sleep(50);
    const drainSeconds = (performance.now() - drainStarted) / 1000;
    const host = load.stop();
    const after = await snapshot(ctx.etcdUrl, ctx.api);
    const opAfter = await operatorBytes(ctx.operator);
    const cpu = process.cpuUsage(cpu0);
    const received: PhaseMeasurement['received'] = {};
    const perNode = new Array<number>(ctx.nodes).fill(0);
    let quietNodeCpsEvents = 0;
    for (const s of pool.streams) {
      const r = (received[s.spec.kind] ??= { bytes: 0, events: 0 });
      r.bytes += s.bytes;
      r.events += s.events;
      perNode[s.spec.node] += s.bytes;
      if (s.spec.kind === 'cps' && ctx.model.nodes[s.spec.node].quiet) quietNodeCpsEvents += s.events;
    }
    return {
      design, rate, churn: result, server: delta(before, after),
      openSeconds: pool.openMs / 1000, streams: pool.streams.length, notOpened,
      received, wireBytes: pool.wireBytes() - wire0, perNodeBytes: perNode, quietNodeCpsEvents,
      ends: pool.ends(),
      recovery: pool.recovery(),
      ...(podStreams.length ? { maxBacklog, undelivered: podStreams.filter((s) => !s.failed).reduce((sum, s) => sum + Math.max(0, expected - s.events), 0) } : {}),
      drainSeconds,
      benchCpuSeconds: (cpu.user + cpu.system) / 1e6,
      host,
      ...(opBefore && opAfter ? { operatorBytes: { cps: opAfter.cps - opBefore.cps, addressSets: opAfter.addressSets - opBefore.addressSets } } : {}),
    };
  } finally {
    pool.close();
  }
}
