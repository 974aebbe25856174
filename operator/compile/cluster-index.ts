// The compiler's view of the cluster, indexed for incremental work: objects by key, pods by node
// and namespace, policies by namespace (a policy only ever selects pods of its own namespace).
import type { V1Namespace, V1Node, V1Pod } from '../../model/cluster.ts';
import { objectKey, podAddress } from '../../model/cluster.ts';
import type { NormPolicy } from './policy.ts';
import { matchesSelector } from './selectors.ts';

interface PodEntry {
  pod: V1Pod;
  group: LabelGroup;
}

/** Pods of one namespace with identical labels: replicas share it, so selection is computed once. */
interface LabelGroup {
  labels: Record<string, string>;
  pods: number;
  /** Keys of the policies selecting these pods, kept current by every pod and policy change. */
  selectedBy: Set<string>;
  sorted?: NormPolicy[];
}

export class ClusterIndex {
  readonly namespaces = new Map<string, V1Namespace>();
  readonly nodes = new Map<string, V1Node>();
  readonly pods = new Map<string, V1Pod>();
  readonly policies = new Map<string, NormPolicy>();
  private readonly podsByNode = new Map<string, Set<string>>();
  private readonly podsByNamespace = new Map<string, Map<string, PodEntry>>();
  private readonly policiesByNamespace = new Map<string, Set<string>>();
  private readonly labelGroups = new Map<string, Map<string, LabelGroup>>();

  setPod(pod: V1Pod): V1Pod | undefined {
    const key = objectKey(pod);
    const old = this.deletePod(key);
    this.pods.set(key, pod);
    addTo(this.podsByNode, pod.spec?.nodeName ?? '', key);
    const namespace = pod.metadata?.namespace ?? 'default';
    let inNamespace = this.podsByNamespace.get(namespace);
    if (!inNamespace) this.podsByNamespace.set(namespace, (inNamespace = new Map()));
    inNamespace.set(key, { pod, group: this.joinLabelGroup(namespace, pod.metadata?.labels ?? {}) });
    return old;
  }

  deletePod(key: string): V1Pod | undefined {
    const old = this.pods.get(key);
    if (!old) return undefined;
    this.pods.delete(key);
    removeFrom(this.podsByNode, old.spec?.nodeName ?? '', key);
    const namespace = old.metadata?.namespace ?? 'default';
    const inNamespace = this.podsByNamespace.get(namespace)!;
    this.leaveLabelGroup(namespace, inNamespace.get(key)!.group);
    inNamespace.delete(key);
    if (inNamespace.size === 0) this.podsByNamespace.delete(namespace);
    return old;
  }

  setPolicy(policy: NormPolicy): NormPolicy | undefined {
    const old = this.deletePolicy(policy.key);
    this.policies.set(policy.key, policy);
    addTo(this.policiesByNamespace, policy.namespace, policy.key);
    for (const group of this.labelGroups.get(policy.namespace)?.values() ?? []) {
      if (selects(policy, group.labels)) {
        group.selectedBy.add(policy.key);
        group.sorted = undefined;
      }
    }
    return old;
  }

  deletePolicy(key: string): NormPolicy | undefined {
    const old = this.policies.get(key);
    if (!old) return undefined;
    this.policies.delete(key);
    removeFrom(this.policiesByNamespace, old.namespace, key);
    for (const group of this.labelGroups.get(old.namespace)?.values() ?? []) {
      if (group.selectedBy.delete(key)) group.sorted = undefined;
    }
    return old;
  }

  /** The policies selecting a pod, sorted by key. */
  policiesSelecting(pod: V1Pod): NormPolicy[] {
    const group = this.podsByNamespace.get(pod.metadata?.namespace ?? 'default')?.get(objectKey(pod))?.group;
    if (!group) return [];
    group.sorted ??= [...group.selectedBy].sort().map((k) => this.policies.get(k)!);
    return group.sorted;
  }

  private joinLabelGroup(namespace: string, labels: Record<string, string>): LabelGroup {
    let groups = this.labelGroups.get(namespace);
    if (!groups) this.labelGroups.set(namespace, (groups = new Map()));
    const id = labelsId(labels);
    let group = groups.get(id);
    if (!group) {
      const selectedBy = new Set(this.policiesInNamespace(namespace).filter((p) => selects(p, labels)).map((p) => p.key));
      groups.set(id, (group = { labels, pods: 0, selectedBy }));
    }
    group.pods++;
    return group;
  }

  private leaveLabelGroup(namespace: string, group: LabelGroup): void {
    if (--group.pods > 0) return;
    const groups = this.labelGroups.get(namespace)!;
    groups.delete(labelsId(group.labels));
    if (groups.size === 0) this.labelGroups.delete(namespace);
  }

  podsOnNode(node: string): V1Pod[] {
    return [...(this.podsByNode.get(node) ?? [])].map((k) => this.pods.get(k)!);
  }

  podsInNamespace(namespace: string): V1Pod[] {
    return [...(this.podsByNamespace.get(namespace)?.values() ?? [])].map((e) => e.pod);
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

  namespacesWithPods(): IterableIterator<string> {
    return this.podsByNamespace.keys();
  }

  namespaceLabels(name: string): Record<string, string> {
    // Kubernetes always sets kubernetes.io/metadata.name; manifests written by hand may omit it.
    return { ...(this.namespaces.get(name)?.metadata?.labels ?? {}), 'kubernetes.io/metadata.name': name };
  }
}

/** A policy with a malformed podSelector selects every pod of its namespace (fail closed). */
function selects(policy: NormPolicy, labels: Record<string, string>): boolean {
  return !policy.podSelector || matchesSelector(policy.podSelector, labels);
}

function labelsId(labels: Record<string, string>): string {
  return JSON.stringify(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
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
  return [...new Set([...index.namespaces.keys(), ...index.namespacesWithPods()])];
}
