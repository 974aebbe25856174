// Cluster-scale simulation (no kernel): what the operator computes and writes per event at 100-1000
// nodes, compared with the design where every node watches every pod, namespace and policy.
import { encodeForBudget, specBytes } from '../crds/codec.ts';
import { PolicyCompiler, type ClusterChange } from '../operator/compile/compiler.ts';
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
  writesPerEvent: number;
  bytesPerEvent: number;
  /** Bytes per event every node receives when every node watches every object (Azure NPM's design). */
  watchEverythingBytesPerEvent: number;
}

export const SCALE_SIZES: SyntheticSize[] = [
  { nodes: 100, pods: 10000, policies: 1000 },
  { nodes: 500, pods: 50000, policies: 5000 },
  { nodes: 1000, pods: 50000, policies: 5000 },
];

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
  const bytes = [...compiler.current().values()].map((s) => specBytes(encodeForBudget(s))).sort((a, b) => a - b);
  const namespaces = snapshot.namespaces.length;
  const perEvent: number[] = [];
  let writes = 0;
  let written = 0;
  let objectBytes = 0;
  for (let i = 0; i < events; i++) {
    const change = churn(i, size, namespaces, snapshot.pods);
    objectBytes += Buffer.byteLength(JSON.stringify(change.object));
    const started = performance.now();
    const changed = compiler.update(change);
    for (const spec of changed.values()) if (spec) written += specBytes(encodeForBudget(spec));
    perEvent.push(performance.now() - started);
    writes += changed.size;
  }
  return {
    size, fullCompileMs, heapMB,
    cpsBytesMax: bytes[bytes.length - 1], cpsBytesP99: bytes[Math.floor(bytes.length * 0.99)], cpsTotalMB: bytes.reduce((a, b) => a + b, 0) / 2 ** 20,
    perEventMs: stat(perEvent), writesPerEvent: writes / events, bytesPerEvent: written / events,
    watchEverythingBytesPerEvent: (objectBytes / events) * size.nodes,
  };
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
    const at = (rate: number) => `${(r.writesPerEvent * rate).toFixed(0)} writes/s, ${kb(r.bytesPerEvent * rate)} KiB/s`;
    const npm = (rate: number) => `${(r.watchEverythingBytesPerEvent * rate / 2 ** 20).toFixed(1)} MiB/s`;
    return `| ${r.size.nodes} | ${r.size.pods} | ${r.size.policies} | ${r.fullCompileMs.toFixed(0)} | ${r.heapMB.toFixed(0)} | ${kb(r.cpsBytesMax)} / ${kb(r.cpsBytesP99)} | ${r.perEventMs.median.toFixed(2)} (max ${r.perEventMs.max.toFixed(1)}) | ${at(10)}; ${at(100)} | ${npm(10)}; ${npm(100)} |`;
  });
  return [
    '| nodes | pods | policies | full compile ms | operator heap MB | CPS KiB max / p99 | ms per event | Fencer at 10; 100 events/s | every node watches everything at 10; 100 events/s |',
    '|---|---|---|---|---|---|---|---|---|',
    ...rows,
  ].join('\n');
}
