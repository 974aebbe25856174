// Cluster-scale simulation (no kernel): what the operator computes and writes per event at 100-1000
// nodes, compared with the design where every node watches every pod, namespace and policy.
import type { AddressSet } from '../crds/address-set.ts';
import { encodeForBudget, specBytes } from '../crds/codec.ts';
import { PolicyCompiler, type ClusterChange } from '../operator/compile/compiler.ts';
import { planSet } from '../operator/set-plan.ts';
import { stat, type Stat } from './stats.ts';
import { syntheticCluster, syntheticPod, type SyntheticSize } from './synthetic.ts';

export interface ScaleResult {
  size: SyntheticSize;
  fullCompileMs: number;
  heapMB: number;
  cpsBytesMax: number;
  cpsBytesP99: number;
  cpsTotalMB: number;
  perEventMs: Stat;
  /** CompiledPolicySet writes per event (node objects). */
  writesPerEvent: number;
  bytesPerEvent: number;
  /** AddressSet shard writes per event, and their bytes (spec and labels as sent). */
  shardWritesPerEvent: number;
  shardBytesPerEvent: number;
  shards: number;
  shardBytesMax: number;
  shardTotalMB: number;
  /** Bytes per event every node receives when every node watches every object (Azure NPM's design). */
  watchEverythingBytesPerEvent: number;
}

export const SCALE_SIZES: SyntheticSize[] = [
  { nodes: 100, pods: 10000, policies: 1000 },
  { nodes: 500, pods: 50000, policies: 5000 },
  { nodes: 1000, pods: 50000, policies: 5000 },
];

/** AKS's largest cluster: compiled once (no churn), for compile time, heap and the largest object. */
export const SCALE_MAX: SyntheticSize = { nodes: 5000, pods: 250000, policies: 25000 };

export function benchScale(size: SyntheticSize, events = 300): ScaleResult {
  const snapshot = syntheticCluster(size);
  global.gc?.();
  const heapBefore = process.memoryUsage().heapUsed;
  const compiler = new PolicyCompiler();
  const t = performance.now();
  compiler.load(snapshot);
  compiler.recompile(compiler.nodeNames());
  const fullCompileMs = performance.now() - t;
  global.gc?.();
  const heapMB = (process.memoryUsage().heapUsed - heapBefore) / 2 ** 20;
  const bytes = [...compiler.nodeSpecs().values()].map((s) => specBytes(encodeForBudget(s))).sort((a, b) => a - b);
  // The set writer's work, simulated: the shards it would hold, and what each event makes it write.
  const observed = new Map<string, AddressSet[]>();
  const writeSets = (ids: string[]) => {
    let count = 0;
    let sent = 0;
    for (const id of ids) {
      const plan = planSet(id, compiler.sharedSet(id), [], observed.get(id) ?? []);
      const byName = new Map((observed.get(id) ?? []).map((o) => [o.metadata.name, o]));
      for (const a of plan.writes) if (a.kind !== 'delete') {
        byName.set(a.object.metadata.name, a.object);
        sent += Buffer.byteLength(JSON.stringify(a.object));
        count++;
      }
      for (const a of plan.deletes) if (a.kind === 'delete') {
        byName.delete(a.name);
        count++;
      }
      observed.set(id, [...byName.values()]);
    }
    return { count, sent };
  };
  writeSets(compiler.sharedSetIds());
  compiler.takeSetChanges();
  const shardSizes = [...observed.values()].flat().map((o) => Buffer.byteLength(JSON.stringify(o)));
  const namespaces = snapshot.namespaces.length;
  const perEvent: number[] = [];
  let writes = 0;
  let written = 0;
  let shardWrites = 0;
  let shardBytes = 0;
  let objectBytes = 0;
  for (let i = 0; i < events; i++) {
    const change = churn(i, size, namespaces, snapshot.pods);
    objectBytes += Buffer.byteLength(JSON.stringify(change.object));
    const started = performance.now();
    const changed = compiler.update(change);
    const sets = writeSets(compiler.takeSetChanges());
    for (const spec of changed.values()) if (spec) written += specBytes(encodeForBudget(spec));
    perEvent.push(performance.now() - started);
    writes += changed.size;
    shardWrites += sets.count;
    shardBytes += sets.sent;
  }
  return {
    size, fullCompileMs, heapMB,
    cpsBytesMax: bytes[bytes.length - 1], cpsBytesP99: bytes[Math.floor(bytes.length * 0.99)], cpsTotalMB: bytes.reduce((a, b) => a + b, 0) / 2 ** 20,
    perEventMs: stat(perEvent), writesPerEvent: writes / events, bytesPerEvent: written / events,
    shardWritesPerEvent: shardWrites / events, shardBytesPerEvent: shardBytes / events,
    shards: shardSizes.length, shardBytesMax: Math.max(0, ...shardSizes), shardTotalMB: shardSizes.reduce((a, b) => a + b, 0) / 2 ** 20,
    watchEverythingBytesPerEvent: (objectBytes / events) * size.nodes,
  };
}

export interface ScaleMaxResult { size: SyntheticSize; fullCompileMs: number; heapMB: number; cpsBytesMax: number; cpsTotalMB: number; sharedSets: number; largestSetMembers: number }

/** One full compile of the largest cluster: time, heap, and the largest object it writes. */
export function benchScaleMax(size = SCALE_MAX): ScaleMaxResult {
  const snapshot = syntheticCluster(size);
  global.gc?.();
  const heapBefore = process.memoryUsage().heapUsed;
  const t = performance.now();
  const compiler = PolicyCompiler.loaded(snapshot);
  const fullCompileMs = performance.now() - t;
  global.gc?.();
  const heapMB = (process.memoryUsage().heapUsed - heapBefore) / 2 ** 20;
  const bytes = [...compiler.nodeSpecs().values()].map((s) => specBytes(encodeForBudget(s)));
  const ids = compiler.sharedSetIds();
  return {
    size, fullCompileMs, heapMB, cpsBytesMax: Math.max(...bytes), cpsTotalMB: bytes.reduce((a, b) => a + b, 0) / 2 ** 20,
    sharedSets: ids.length, largestSetMembers: Math.max(0, ...ids.map((id) => compiler.sharedSet(id)!.members.length)),
  };
}

export function scaleMaxReport(r: ScaleMaxResult): string {
  return `Compile only, ${r.size.nodes} nodes / ${r.size.pods} pods / ${r.size.policies} policies: full compile ${(r.fullCompileMs / 1000).toFixed(1)} s, operator heap ${r.heapMB.toFixed(0)} MB, largest CompiledPolicySet ${(r.cpsBytesMax / 1024).toFixed(1)} KiB (all ${r.cpsTotalMB.toFixed(0)} MiB), ${r.sharedSets} shared sets, the largest ${r.largestSetMembers} members (shards of at most 256 members: no object near the 1 MiB limit).`;
}

/** Pods relabelled, created and deleted in turn. */
function churn(i: number, size: SyntheticSize, namespaces: number, pods: ClusterChange['object'][]): ClusterChange {
  switch (i % 3) {
    case 0: return { kind: 'Pod', type: 'upsert', object: syntheticPod(i * 7 % size.pods, namespaces, size.nodes, i + 1) };
    case 1: return { kind: 'Pod', type: 'upsert', object: { ...syntheticPod(size.pods + i, namespaces, size.nodes), status: { phase: 'Running', podIP: `10.200.${Math.floor(i / 250)}.${i % 250}` } } };
    default: return { kind: 'Pod', type: 'delete', object: pods[(i * 13) % pods.length] as never };
  }
}

export function scaleReport(results: ScaleResult[]): string {
  const kb = (b: number) => (b / 1024).toFixed(1);
  const rows = results.map((r) => {
    const at = (rate: number) => `${((r.writesPerEvent + r.shardWritesPerEvent) * rate).toFixed(0)} writes/s, ${kb((r.bytesPerEvent + r.shardBytesPerEvent) * rate)} KiB/s`;
    const npm = (rate: number) => `${(r.watchEverythingBytesPerEvent * rate / 2 ** 20).toFixed(1)} MiB/s`;
    return `| ${r.size.nodes} | ${r.size.pods} | ${r.size.policies} | ${r.fullCompileMs.toFixed(0)} | ${r.heapMB.toFixed(0)} | ${kb(r.cpsBytesMax)} / ${kb(r.cpsBytesP99)} | ${r.shards} (max ${kb(r.shardBytesMax)} KiB) | ${r.perEventMs.median.toFixed(2)} (max ${r.perEventMs.max.toFixed(1)}) | ${r.writesPerEvent.toFixed(2)} | ${r.shardWritesPerEvent.toFixed(2)}, ${kb(r.shardBytesPerEvent)} KiB | ${at(10)}; ${at(100)} | ${npm(10)}; ${npm(100)} |`;
  });
  return [
    '| nodes | pods | policies | full compile ms | operator heap MB | CPS KiB max / p99 | AddressSet shards | ms per event | node objects written per event | shards written per event | Fencer at 10; 100 events/s | every node watches everything at 10; 100 events/s |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|',
    ...rows,
  ].join('\n');
}
