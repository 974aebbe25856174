// Compiler benchmark: full compile and per-event incremental time, and memory, for synthetic clusters.
import { PolicyCompiler, type ClusterChange } from '../operator/compile/compiler.ts';
import { fmt, measure, stat, type Stat } from './stats.ts';
import { syntheticCluster, syntheticPod, syntheticPolicy, type SyntheticSize } from './synthetic.ts';

export interface CompileResult {
  size: SyntheticSize;
  fullMs: Stat;
  incrementalMs: Record<string, Stat>;
  heapMB: number;
  outputEntries: number;
}

export const COMPILE_SIZES: SyntheticSize[] = [
  { pods: 1000, policies: 100, nodes: 10 },
  { pods: 10000, policies: 1000, nodes: 100 },
  { pods: 50000, policies: 5000, nodes: 500 },
  { pods: 10000, policies: 10000, nodes: 100 },
];

export function benchCompile(size: SyntheticSize, runs = 5): CompileResult {
  const snapshot = syntheticCluster(size);
  const namespaces = snapshot.namespaces.length;
  let entries = 0;
  const fullMs = measure(() => {
    const specs = PolicyCompiler.compile(snapshot);
    entries = [...specs.values()].reduce((n, s) => n + s.counts.entries, 0);
  }, runs);

  global.gc?.();
  const before = process.memoryUsage().heapUsed;
  const compiler = new PolicyCompiler();
  compiler.load(snapshot);
  compiler.recompile(compiler.nodeNames());
  global.gc?.();
  const heapMB = (process.memoryUsage().heapUsed - before) / 2 ** 20;

  const events: Record<string, (i: number) => ClusterChange> = {
    'pod relabel': (i) => ({ kind: 'Pod', type: 'upsert', object: syntheticPod(i * 7, namespaces, size.nodes, i + 1) }),
    'pod create': (i) => ({ kind: 'Pod', type: 'upsert', object: { ...syntheticPod(size.pods + i, namespaces, size.nodes), status: { phase: 'Running', podIP: `10.200.${Math.floor(i / 250)}.${i % 250}` } } }),
    'pod delete': (i) => ({ kind: 'Pod', type: 'delete', object: snapshot.pods[i * 13] }),
    'policy update': (i) => ({ kind: 'NetworkPolicy', type: 'upsert', object: syntheticPolicy(i * 3, namespaces, i + 1) }),
  };
  const incrementalMs: Record<string, Stat> = {};
  for (const [name, make] of Object.entries(events)) {
    const samples: number[] = [];
    for (let i = 0; i < 30; i++) {
      const change = make(i);
      const t = performance.now();
      compiler.update(change);
      samples.push(performance.now() - t);
    }
    incrementalMs[name] = stat(samples.slice(5));
  }
  return { size, fullMs, incrementalMs, heapMB, outputEntries: entries };
}

export function compileReport(results: CompileResult[]): string {
  const head = '| pods | policies | nodes | full compile ms | heap MB | set entries | pod relabel ms | pod create ms | pod delete ms | policy update ms | worst incremental / full |';
  const sep = '|---|---|---|---|---|---|---|---|---|---|---|';
  const rows = results.map((r) => {
    const worst = Math.max(...Object.values(r.incrementalMs).map((s) => s.median));
    return `| ${r.size.pods} | ${r.size.policies} | ${r.size.nodes} | ${fmt(r.fullMs, 0)} | ${r.heapMB.toFixed(0)} | ${r.outputEntries} | ${Object.values(r.incrementalMs).map((s) => fmt(s, 2)).join(' | ')} | ${((100 * worst) / r.fullMs.median).toFixed(2)}% |`;
  });
  return [head, sep, ...rows].join('\n');
}
