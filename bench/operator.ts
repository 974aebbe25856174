// Operator benchmark (issue 4): a real kube-apiserver holding 10 nodes / 1000 pods / 100 policies
// (bench/synthetic.ts), the operator running in-process, and an independent CompiledPolicySet watch.
// For a pod label change it measures the time until the watch shows the last affected node's new
// spec (which nodes and which hashes come from a mirror compiler fed the same change), and the CPS
// writes and bytes the operator spent per pod event, one change at a time and in a burst.
import { CustomObjectsApi, ListWatch, Watch, type KubeConfig, type KubernetesListObject, type KubernetesObject, type V1Pod } from '@kubernetes/client-node';
import { CPS_GROUP, CPS_PLURAL, CPS_VERSION, type CompiledPolicySet } from '../crds/types.ts';
import { PolicyCompiler } from '../operator/compile/compiler.ts';
import { counterTotal } from '../operator/metrics.ts';
import { startOperator, type OperatorHandle } from '../operator/operator.ts';
import { silentLogger } from '../runtime/log.ts';
import { startControlPlane } from '../localcluster/control-plane.ts';
import { kubelet } from '../localcluster/kubelet.ts';
import { clusterApi, clusterSnapshot, type Kube } from '../localcluster/cluster-api.ts';
import { podCIDR, syntheticCluster, type SyntheticSize } from './synthetic.ts';

export interface OperatorBenchResult {
  size: SyntheticSize;
  coalesceMs: number;
  /** Creating the cluster objects through the apiserver, then the operator's start to all CPS written. */
  setupSeconds: number;
  startToWrittenMs: number;
  /** One label change at a time: change → the last affected CPS seen by a separate watch. */
  latencyMs: { p50: number; p99: number; max: number; samples: number };
  affectedNodesPerEvent: number;
  /** Spec writes (create/update), status writes (InSync=Pending) and spec bytes per pod event. */
  perEvent: { specWrites: number; statusWrites: number; bytes: number };
  burst: { events: number; specWrites: number; statusWrites: number; bytes: number; lastWriteMs: number };
}

type Cps = CompiledPolicySet & KubernetesObject;
const SAMPLES = 100;
const BURST = 50;

export async function benchOperator(size: SyntheticSize = { nodes: 10, pods: 1000, policies: 100 }, coalesceMs = 50): Promise<OperatorBenchResult> {
  const cp = await startControlPlane();
  try {
    await cp.installCrds();
    const api = clusterApi(cp.kubeConfig());
    const setupStarted = performance.now();
    await createCluster(api, size);
    const setupSeconds = (performance.now() - setupStarted) / 1000;
    const observer = await watchCps(api.kc);
    const started = performance.now();
    const op = await startOperator({ kubeConfig: api.kc, metricsPort: -1, coalesceMs, log: silentLogger(), identity: 'bench' });
    try {
      await until(() => op.isLeader() && op.idle() && observer.seen.size === size.nodes, 120_000);
      const startToWrittenMs = performance.now() - started;
      const mirror = new PolicyCompiler();
      mirror.load(await clusterSnapshot(api));
      mirror.recompile(mirror.nodeNames());
      const sequential = await sequentialChanges(api, op, observer, mirror);
      const burst = await burstOfChanges(api, op, observer, mirror);
      return { size, coalesceMs, setupSeconds, startToWrittenMs, ...sequential, burst };
    } finally {
      await op.stop();
      observer.stop();
    }
  } finally {
    await cp.stop();
  }
}

async function createCluster(api: Kube, size: SyntheticSize): Promise<void> {
  const snapshot = syntheticCluster(size);
  const k = kubelet(api.kc);
  await Promise.all(snapshot.namespaces.map((ns) => k.createNamespace(ns.metadata!.name!, ns.metadata!.labels)));
  await Promise.all(snapshot.nodes.map((n, i) => k.createNode(n.metadata!.name!, podCIDR(i))));
  await inBatches(snapshot.pods, 32, (p) => k.createPod({
    namespace: p.metadata!.namespace!,
    name: p.metadata!.name!,
    node: p.spec!.nodeName!,
    labels: p.metadata!.labels,
    ports: p.spec!.containers[0].ports?.map((port) => ({ name: port.name, containerPort: port.containerPort })),
    ip: p.status!.podIP,
  }));
  await inBatches(snapshot.policies, 16, (policy) => api.net.createNamespacedNetworkPolicy({ namespace: policy.metadata!.namespace!, body: policy }));
}

async function inBatches<T>(items: T[], width: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < items.length; i += width) await Promise.all(items.slice(i, i + width).map(fn));
}

interface Observer {
  /** Per CPS: the content hash last seen and when (performance.now()). */
  seen: Map<string, { hash: string; at: number }>;
  stop(): void;
}

async function watchCps(kc: KubeConfig): Promise<Observer> {
  const custom = kc.makeApiClient(CustomObjectsApi);
  const list = () => custom.listClusterCustomObject({ group: CPS_GROUP, version: CPS_VERSION, plural: CPS_PLURAL }) as Promise<KubernetesListObject<Cps>>;
  const lw = new ListWatch<Cps>(`/apis/${CPS_GROUP}/${CPS_VERSION}/${CPS_PLURAL}`, new Watch(kc), list, false);
  const seen = new Map<string, { hash: string; at: number }>();
  const record = (o: Cps) => {
    const before = seen.get(o.metadata.name);
    if (before?.hash !== o.spec.contentHash) seen.set(o.metadata.name, { hash: o.spec.contentHash, at: performance.now() });
  };
  lw.on('add', record);
  lw.on('update', record);
  await lw.start();
  return { seen, stop: () => void lw.stop() };
}

/** A new app label for pod i, as the synthetic generator would give it with another salt. */
function relabel(pod: V1Pod, salt: number): V1Pod {
  const app = `app-${(Number(pod.metadata!.name!.slice(4)) + salt) % 10}`;
  return { ...pod, metadata: { ...pod.metadata, labels: { ...pod.metadata!.labels, app } } };
}

/** Applies the label change to the mirror; returns the nodes it changes and their new hashes. */
function expectChange(mirror: PolicyCompiler, pod: V1Pod): Map<string, string> {
  const changed = mirror.update({ kind: 'Pod', type: 'upsert', object: pod });
  return new Map([...changed].map(([node, spec]) => [node, spec?.contentHash ?? '']));
}

async function counts(op: OperatorHandle) {
  const writes = op.metrics.cpsWrites;
  return {
    spec: await counterTotal(writes, { name: 'result', values: ['created', 'updated'] }),
    status: await counterTotal(writes, { name: 'result', values: ['status'] }),
    bytes: await counterTotal(op.metrics.cpsBytes),
  };
}

async function sequentialChanges(api: Kube, op: OperatorHandle, observer: Observer, mirror: PolicyCompiler) {
  const pods = (await api.core.listPodForAllNamespaces()).items.sort((a, b) => (a.metadata!.name! < b.metadata!.name! ? -1 : 1));
  const latencies: number[] = [];
  let affected = 0;
  const before = await counts(op);
  for (let i = 0; i < SAMPLES; i++) {
    const index = (i * 37) % pods.length;
    const pod = relabel(pods[index], i + 1);
    pods[index] = pod;
    const expected = expectChange(mirror, pod);
    affected += expected.size;
    const t0 = performance.now();
    await api.k.labelPod(pod.metadata!.namespace!, pod.metadata!.name!, { app: pod.metadata!.labels!.app });
    const last = await lastWrite(observer, expected);
    if (expected.size) latencies.push(last - t0);
    await until(() => op.idle(), 10_000);
  }
  const after = await counts(op);
  const sorted = latencies.sort((a, b) => a - b);
  const pick = (q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? NaN;
  return {
    latencyMs: { p50: pick(0.5), p99: pick(0.99), max: sorted[sorted.length - 1] ?? NaN, samples: sorted.length },
    affectedNodesPerEvent: affected / SAMPLES,
    perEvent: { specWrites: (after.spec - before.spec) / SAMPLES, statusWrites: (after.status - before.status) / SAMPLES, bytes: (after.bytes - before.bytes) / SAMPLES },
  };
}

async function burstOfChanges(api: Kube, op: OperatorHandle, observer: Observer, mirror: PolicyCompiler) {
  const pods = (await api.core.listPodForAllNamespaces()).items.sort((a, b) => (a.metadata!.name! < b.metadata!.name! ? -1 : 1));
  const changes = Array.from({ length: BURST }, (_, i) => relabel(pods[(i * 19 + 5) % pods.length], 1000 + i));
  const expected = new Map<string, string>();
  for (const pod of changes) for (const [node, hash] of expectChange(mirror, pod)) expected.set(node, hash);
  const before = await counts(op);
  const t0 = performance.now();
  await Promise.all(changes.map((pod) => api.k.labelPod(pod.metadata!.namespace!, pod.metadata!.name!, { app: pod.metadata!.labels!.app })));
  const last = await lastWrite(observer, expected);
  await until(() => op.idle(), 10_000);
  const after = await counts(op);
  return { events: BURST, specWrites: after.spec - before.spec, statusWrites: after.status - before.status, bytes: after.bytes - before.bytes, lastWriteMs: last - t0 };
}

/** When the watch showed the last of the expected hashes (now, when none are expected). */
async function lastWrite(observer: Observer, expected: Map<string, string>): Promise<number> {
  await until(() => [...expected].every(([node, hash]) => observer.seen.get(node)?.hash === hash), 10_000);
  if (expected.size === 0) return performance.now();
  return Math.max(...[...expected.keys()].map((n) => observer.seen.get(n)!.at));
}

async function until(condition: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`benchmark condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

export function operatorReport(r: OperatorBenchResult): string {
  const f = (n: number, d = 1) => n.toFixed(d);
  return [
    `Real kube-apiserver, ${r.size.nodes} nodes / ${r.size.pods} pods / ${r.size.policies} policies, coalescing window ${r.coalesceMs} ms; cluster created in ${f(r.setupSeconds)} s; operator start → every CPS written in ${f(r.startToWrittenMs, 0)} ms.`,
    '',
    '| measure | value |',
    '|---|---|',
    `| pod label change → last affected CPS written (watch), p50 | ${f(r.latencyMs.p50)} ms |`,
    `| … p99 (${r.latencyMs.samples} changes) | ${f(r.latencyMs.p99)} ms |`,
    `| nodes whose spec changed, per event | ${f(r.affectedNodesPerEvent, 2)} |`,
    `| CPS spec writes per pod event (one at a time) | ${f(r.perEvent.specWrites, 2)} (+ ${f(r.perEvent.statusWrites, 2)} InSync status patches) |`,
    `| CPS spec bytes per pod event | ${f(r.perEvent.bytes, 0)} |`,
    `| burst of ${r.burst.events} changes: spec writes per event | ${f(r.burst.specWrites / r.burst.events, 2)} (${r.burst.specWrites} in all, + ${r.burst.statusWrites} status) |`,
    `| burst: bytes per event | ${f(r.burst.bytes / r.burst.events, 0)} |`,
    `| burst: first change → last CPS written | ${f(r.burst.lastWriteMs, 0)} ms |`,
  ].join('\n');
}

if (import.meta.main) {
  const result = await benchOperator();
  console.log(operatorReport(result));
  console.log(JSON.stringify(result));
}
