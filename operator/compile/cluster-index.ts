// The compiler's view of the cluster, indexed for incremental work: objects by key, pods by node
// and namespace, policies by namespace (a policy only ever selects pods of its own namespace).
import type { V1Namespace, V1Node, V1Pod } from '../../model/cluster.ts';
import { objectKey, podAddress } from '../../model/cluster.ts';
import type { NormPolicy } from './policy.ts';

export class ClusterIndex {
  readonly namespaces = new Map<string, V1Namespace>();
  readonly nodes = new Map<string, V1Node>();
  readonly pods = new Map<string, V1Pod>();
  readonly policies = new Map<string, NormPolicy>();
  private readonly podsByNode = new Map<string, Set<string>>();
  private readonly podsByNamespace = new Map<string, Set<string>>();
  private readonly policiesByNamespace = new Map<string, Set<string>>();

  setPod(pod: V1Pod): V1Pod | undefined {
    const key = objectKey(pod);
    const old = this.deletePod(key);
    this.pods.set(key, pod);
    addTo(this.podsByNode, pod.spec?.nodeName ?? '', key);
    addTo(this.podsByNamespace, pod.metadata?.namespace ?? 'default', key);
    return old;
  }

  deletePod(key: string): V1Pod | undefined {
    const old = this.pods.get(key);
    if (!old) return undefined;
    this.pods.delete(key);
    removeFrom(this.podsByNode, old.spec?.nodeName ?? '', key);
    removeFrom(this.podsByNamespace, old.metadata?.namespace ?? 'default', key);
    return old;
  }

  setPolicy(policy: NormPolicy): NormPolicy | undefined {
    const old = this.deletePolicy(policy.key);
    this.policies.set(policy.key, policy);
    addTo(this.policiesByNamespace, policy.namespace, policy.key);
    return old;
  }

  deletePolicy(key: string): NormPolicy | undefined {
    const old = this.policies.get(key);
    if (!old) return undefined;
    this.policies.delete(key);
    removeFrom(this.policiesByNamespace, old.namespace, key);
    return old;
  }

  podsOnNode(node: string): V1Pod[] {
    return [...(this.podsByNode.get(node) ?? [])].map((k) => this.pods.get(k)!);
  }

  podsInNamespace(namespace: string): V1Pod[] {
    return [...(this.podsByNamespace.get(namespace) ?? [])].map((k) => this.pods.get(k)!);
  }

  policiesInNamespace(namespace: string): NormPolicy[] {
    return [...(this.policiesByNamespace.get(namespace) ?? [])].map((k) => this.policies.get(k)!);
  }

  /** Nodes hosting at least one addressable pod of the namespace. */
  nodesWithPodsIn(namespace: string): Set<string> {
    const out = new Set<string>();
    for (const pod of this.podsInNamespace(namespace)) {
      if (pod.spec?.nodeName && podAddress(pod)) out.add(pod.spec.nodeName);
    }
    return out;
  }

  namespaceLabels(name: string): Record<string, string> {
    // Kubernetes always sets kubernetes.io/metadata.name; manifests written by hand may omit it.
    return { ...(this.namespaces.get(name)?.metadata?.labels ?? {}), 'kubernetes.io/metadata.name': name };
  }
}

function addTo(index: Map<string, Set<string>>, k: string, v: string): void {
  let s = index.get(k);
  if (!s) index.set(k, (s = new Set()));
  s.add(v);
}

function removeFrom(index: Map<string, Set<string>>, k: string, v: string): void {
  const s = index.get(k);
  if (!s) return;
  s.delete(v);
  if (s.size === 0) index.delete(k);
}

export function namespacesOf(index: ClusterIndex): string[] {
  return [...new Set([...index.namespaces.keys(), ...[...index.pods.values()].map((p) => p.metadata?.namespace ?? 'default')])];
}
