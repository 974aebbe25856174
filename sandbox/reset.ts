// Brings the API to a scenario's starting point between scenarios that share one control plane:
// no policies, no pods, no nodes, and exactly the scenario's namespaces with exactly its labels.
import { CoreV1Api, NetworkingV1Api, type KubeConfig } from '@kubernetes/client-node';
import { kubelet } from '../localcluster/kubelet.ts';

const SYSTEM = new Set(['default', 'kube-system', 'kube-public', 'kube-node-lease']);

export async function resetCluster(kc: KubeConfig, namespaces: Map<string, Record<string, string>>): Promise<void> {
  const core = kc.makeApiClient(CoreV1Api);
  const net = kc.makeApiClient(NetworkingV1Api);
  const kl = kubelet(kc);
  for (const p of (await net.listNetworkPolicyForAllNamespaces()).items) {
    await net.deleteNamespacedNetworkPolicy({ namespace: p.metadata!.namespace!, name: p.metadata!.name! });
  }
  for (const p of (await core.listPodForAllNamespaces()).items) {
    if (!SYSTEM.has(p.metadata!.namespace!)) await kl.deletePod(p.metadata!.namespace!, p.metadata!.name!);
  }
  for (const n of (await core.listNode()).items) await kl.deleteNode(n.metadata!.name!);
  const existing = new Map((await core.listNamespace()).items.map((n) => [n.metadata!.name!, n.metadata?.labels ?? {}]));
  for (const [name, labels] of namespaces) {
    if (!existing.has(name)) {
      await kl.createNamespace(name, labels);
      continue;
    }
    const changes: Record<string, string | null> = { ...labels };
    for (const k of Object.keys(existing.get(name)!)) if (!(k in labels) && k !== 'kubernetes.io/metadata.name') changes[k] = null;
    await kl.labelNamespace(name, changes);
  }
}
