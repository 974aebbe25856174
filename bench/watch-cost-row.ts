// A measured phase as one row of bench/out/watch-cost.json: everything per accepted pod write.
import type { PhaseMeasurement } from './watch-phase.ts';
import { writesOf } from './server-metrics.ts';
import type { Design } from './watch-designs.ts';

export interface WatchCostRow {
  nodes: number;
  eventsPerSecond: number;
  design: Design;
  /** Pod writes the apiserver accepted during the phase (an event = one pod write). */
  events: number;
  /** Accepted pod writes per second actually achieved. */
  achievedPerSecond: number;
  /** etcd WAL bytes written, per event (everything etcd wrote: pods, operator objects, leases). */
  etcdBytesPerEvent: number;
  etcdDbGrowthPerEvent: number;
  etcdPutsPerEvent: number;
  /** Body bytes the simulated nodes received, per event (all N nodes together): watches, plus relists after a watch could not resume. */
  sentBytesPerEvent: number;
  relistBytesPerEvent: number;
  /** The same through TLS: HTTP/2 and TLS framing included. */
  wireBytesPerEvent: number;
  sentBytesPerNodePerEvent: { median: number; max: number };
  sentBytesByWatch: Record<string, number>;
  /** Average size of one watch event, by what was watched. */
  bytesPerWatchEvent: Record<string, number>;
  /** apiserver_watch_events_sizes_sum per event: every watcher, the operator's informers included. */
  apiserverWatchBytesPerEvent: Record<string, number>;
  apiserverWatchEventsPerEvent: Record<string, number>;
  /** CompiledPolicySet spec writes (create/update/patch, not status) per event. */
  nodeObjectWritesPerEvent: number;
  /** The same counting only nodes other than the pod's: quiet nodes' CPS events scaled to N-1 other nodes. */
  offNodeWritesPerEvent: number;
  quietNodes: number;
  quietNodeCpsWrites: number;
  cpsStatusWritesPerEvent: number;
  addressSetWritesPerEvent: number;
  /** Spec bytes the operator sent per event (its counters), CompiledPolicySets and AddressSets. */
  operatorSpecBytesPerEvent?: { cps: number; addressSets: number };
  /** Pod writes by the apiserver's own count (cross-check of events). */
  apiserverPodWrites: number;
  /** Every accepted write by "resource[/subresource] VERB" (apiserver_request_total), per event. */
  apiserverWritesPerEvent: Record<string, number>;
  /** Cores used over the phase; `other` is the machine's busy cores that none of the three account for (another job running). */
  cpuCores: { apiserver: number; etcd: number; bench: number; other: number };
  /** Event-loop delay of the bench's main thread (operator, churn) and of its watch thread. */
  benchLoopDelayMs: { p99: number; max: number; watchP99: number; watchMax: number };
  watchers: {
    streams: number;
    notOpened: number;
    /** Watches the server ended, by reason; each resumed from its last resourceVersion (or relisted after a 410). */
    ends: Record<string, number>;
    resumes: number;
    relists: number;
    /** Watches that could not be reopened. */
    failed: number;
    terminatedByApiserver: Record<string, number>;
    openSeconds: number;
  };
  lag: { drainSeconds: number; maxBacklogEvents?: number; undeliveredEvents?: number };
  churn: { seconds: number; missedTicks: number; unfinishedOps: number; failedWrites: number; failures: string[]; ops: Record<string, number>; byStep: Record<string, number> };
  /** Filled in when both designs ran: this row's etcd bytes minus the watch-everything row's (no operator there). */
  operatorEtcdBytesPerEvent?: number;
}

const per = (x: number, events: number) => (events ? x / events : 0);

function cores(m: PhaseMeasurement): WatchCostRow['cpuCores'] {
  const seconds = m.server.seconds;
  const apiserver = m.server.apiserver.cpuSeconds / seconds;
  const etcd = m.server.etcd.cpuSeconds / seconds;
  const bench = m.benchCpuSeconds / seconds;
  return { apiserver, etcd, bench, other: Math.max(0, m.host.hostBusyCores - apiserver - etcd - bench) };
}

export function toRow(nodes: number, m: PhaseMeasurement, quietNodes: number): WatchCostRow {
  const events = m.churn.writes;
  const writes = m.server.apiserver.writes;
  const sorted = [...m.perNodeBytes].sort((a, b) => a - b);
  const perKind = (r: Record<string, number>) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, per(v, events)]));
  return {
    nodes,
    eventsPerSecond: m.rate,
    design: m.design,
    events,
    achievedPerSecond: events / m.churn.seconds,
    etcdBytesPerEvent: per(m.server.etcd.walBytes, events),
    etcdDbGrowthPerEvent: per(m.server.etcd.dbGrowthBytes, events),
    etcdPutsPerEvent: per(m.server.etcd.puts, events),
    sentBytesPerEvent: per(Object.values(m.received).reduce((s, r) => s + r.bytes, 0) + m.recovery.relistBytes, events),
    relistBytesPerEvent: per(m.recovery.relistBytes, events),
    wireBytesPerEvent: per(m.wireBytes, events),
    sentBytesPerNodePerEvent: { median: per(sorted[Math.floor((sorted.length - 1) / 2)] ?? 0, events), max: per(sorted[sorted.length - 1] ?? 0, events) },
    sentBytesByWatch: Object.fromEntries(Object.entries(m.received).map(([k, r]) => [k, per(r.bytes, events)])),
    bytesPerWatchEvent: Object.fromEntries(Object.entries(m.received).filter(([, r]) => r.events).map(([k, r]) => [k, r.bytes / r.events])),
    apiserverWatchBytesPerEvent: perKind(m.server.apiserver.watchBytes),
    apiserverWatchEventsPerEvent: perKind(m.server.apiserver.watchEvents),
    nodeObjectWritesPerEvent: per(writesOf(writes, 'compiledpolicysets'), events),
    offNodeWritesPerEvent: quietNodes ? per(m.quietNodeCpsEvents * (nodes - 1), quietNodes * events) : 0,
    quietNodes,
    quietNodeCpsWrites: m.quietNodeCpsEvents,
    cpsStatusWritesPerEvent: per(writesOf(writes, 'compiledpolicysets/status'), events),
    addressSetWritesPerEvent: per(writesOf(writes, 'addresssets'), events),
    ...(m.operatorBytes ? { operatorSpecBytesPerEvent: { cps: per(m.operatorBytes.cps, events), addressSets: per(m.operatorBytes.addressSets, events) } } : {}),
    apiserverPodWrites: writesOf(writes, 'pods', 'pods/status', 'pods/binding'),
    apiserverWritesPerEvent: perKind(writes),
    cpuCores: cores(m),
    benchLoopDelayMs: { p99: m.host.loopDelayP99Ms, max: m.host.loopDelayMaxMs, watchP99: m.host.watchLoopDelayP99Ms, watchMax: m.host.watchLoopDelayMaxMs },
    watchers: {
      streams: m.streams, notOpened: m.notOpened, ends: m.ends, resumes: m.recovery.resumes, relists: m.recovery.relists, failed: m.recovery.failed,
      terminatedByApiserver: m.server.apiserver.terminatedWatchers, openSeconds: m.openSeconds,
    },
    lag: { drainSeconds: m.drainSeconds, maxBacklogEvents: m.maxBacklog, undeliveredEvents: m.undelivered },
    churn: { seconds: m.churn.seconds, missedTicks: m.churn.missedTicks, unfinishedOps: m.churn.unfinished, failedWrites: m.churn.failed, failures: m.churn.failures, ops: m.churn.ops, byStep: m.churn.byStep },
  };
}

/** Operator share of etcd bytes: fencer rows minus the watch-everything row of the same size and rate. */
export function attributeOperator(rows: WatchCostRow[]): void {
  for (const row of rows) {
    if (row.design !== 'fencer') continue;
    const base = rows.find((r) => r.design === 'watch-everything' && r.nodes === row.nodes && r.eventsPerSecond === row.eventsPerSecond);
    if (base) row.operatorEtcdBytesPerEvent = row.etcdBytesPerEvent - base.etcdBytesPerEvent;
  }
}
