// The initial population through the API: the synthetic cluster's Namespaces, Nodes (podCIDR,
// InternalIP, Ready), NetworkPolicies, and pods created already bound with one kubelet report
// (Running, Ready, podIP): two writes a pod instead of five; the population is not what is measured.
import type { ApiClient } from './h2.ts';
import { controllerPod, replicaSetOf, suffix, type PodIdentity } from './kubelet-pod.ts';
import { kubeletStatus } from './kubelet-status.ts';
import { ClusterModel, type ModelNode, type ModelPod } from './churn-model.ts';
import { syntheticCluster, type SyntheticSize } from './synthetic.ts';

export interface PopulateResult {
  model: ClusterModel;
  /** Wall time of each kind, seconds. */
  seconds: { namespaces: number; nodes: number; policies: number; pods: number };
  /** JSON size of a pod as the apiserver returns it after its Ready report. */
  podBytes: number;
}

export const MERGE = 'application/merge-patch+json';
export const timestamp = () => new Date().toISOString().replace(/\.\d+Z$/, 'Z');

/** Runs fn over items with `width` in flight; logs progress every 10 s. */
export async function inParallel<T>(what: string, items: T[], width: number, fn: (item: T) => Promise<unknown>): Promise<number> {
  const started = performance.now();
  let next = 0;
  let done = 0;
  const progress = setInterval(() => console.error(`  ${what}: ${done}/${items.length}`), 10_000);
  try {
    await Promise.all(Array.from({ length: Math.min(width, items.length) }, async () => {
      while (next < items.length) {
        await fn(items[next++]);
        done++;
      }
    }));
  } finally {
    clearInterval(progress);
  }
  return (performance.now() - started) / 1000;
}

/** A Deployment pod's name: <app>-<pod-template-hash>-<5 characters>. */
export function podName(namespace: string, app: string, seed: string): string {
  return `${app}-${replicaSetOf(namespace, app).hash}-${suffix(seed, 5)}`;
}

export async function createNode(api: ApiClient, node: ModelNode): Promise<void> {
  const labels = { 'kubernetes.io/hostname': node.name, 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64' };
  await api.ok('POST', '/api/v1/nodes', { metadata: { name: node.name, labels }, spec: { podCIDR: node.podCIDR, podCIDRs: [node.podCIDR] } });
  const now = timestamp();
  const status = {
    addresses: [{ type: 'InternalIP', address: node.hostIP }, { type: 'Hostname', address: node.name }],
    conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'kubelet is posting ready status', lastHeartbeatTime: now, lastTransitionTime: now }],
  };
  await api.ok('PATCH', `/api/v1/nodes/${node.name}/status`, { status }, MERGE);
}

export async function populate(api: ApiClient, size: SyntheticSize, width = 64): Promise<PopulateResult> {
  const snapshot = syntheticCluster(size);
  const model = new ClusterModel(size.nodes, snapshot.namespaces.map((n) => n.metadata!.name!));
  const seconds = { namespaces: 0, nodes: 0, policies: 0, pods: 0 };
  seconds.namespaces = await inParallel('namespaces', snapshot.namespaces, width, (ns) => api.ok('POST', '/api/v1/namespaces', { metadata: ns.metadata }));
  seconds.nodes = await inParallel('nodes', model.nodes, width, (node) => createNode(api, node));
  // client-node's model names `from` `_from`; the wire name is `from`.
  const wire = (o: unknown) => JSON.parse(JSON.stringify(o).replaceAll('"_from":', '"from":'));
  seconds.policies = await inParallel('policies', snapshot.policies, width, (p) => api.ok('POST', `/apis/networking.k8s.io/v1/namespaces/${p.metadata!.namespace}/networkpolicies`, wire(p)));
  let podBytes = 0;
  seconds.pods = await inParallel('pods', snapshot.pods, width, async (p) => {
    const node = model.nodes[Number(p.spec!.nodeName!.slice('node-'.length))];
    const labels = p.metadata!.labels as Record<string, string>;
    const ip = model.allocate(node, p.status!.podIP!)!;
    const id: PodIdentity = {
      namespace: p.metadata!.namespace!,
      name: podName(p.metadata!.namespace!, labels.app, `pod/${p.metadata!.name}`),
      labels: { ...labels },
      containerPort: p.spec!.containers[0].ports![0].containerPort,
      nodeName: node.name,
    };
    await api.ok('POST', `/api/v1/namespaces/${id.namespace}/pods?fieldManager=kube-controller-manager`, controllerPod(id));
    const pod: ModelPod = { id, node, ip, state: { hostIP: node.hostIP, podIP: ip, since: timestamp(), ready: false }, busy: false };
    const res = await api.ok('PATCH', `/api/v1/namespaces/${id.namespace}/pods/${id.name}/status?fieldManager=kubelet`, kubeletStatus(id, pod.state, 'ready', timestamp()), MERGE);
    podBytes = res.body.length;
    model.add(pod);
  });
  return { model, seconds, podBytes };
}
