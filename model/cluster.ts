// The cluster as the compiler, the oracle and the offline tools see it: plain Kubernetes objects.
import type { V1Namespace, V1NetworkPolicy, V1Node, V1Pod } from '@kubernetes/client-node';

export type { V1Namespace, V1NetworkPolicy, V1Node, V1Pod };

export interface ClusterSnapshot {
  namespaces: V1Namespace[];
  pods: V1Pod[];
  nodes: V1Node[];
  policies: V1NetworkPolicy[];
}

export type Protocol = 'TCP' | 'UDP' | 'SCTP';
export const PROTOCOLS: readonly Protocol[] = ['TCP', 'UDP', 'SCTP'];

/** One connection attempt, by addresses: what both evaluators answer. */
export interface Flow {
  srcIP: string;
  dstIP: string;
  protocol: Protocol;
  port: number;
}

export function objectKey(o: { metadata?: { namespace?: string; name?: string } }): string {
  return o.metadata?.namespace ? `${o.metadata.namespace}/${o.metadata.name}` : `${o.metadata?.name}`;
}

/** Pods that own an address the dataplane can match: an IPv4 pod IP, not hostNetwork, not finished. */
export function podAddress(pod: V1Pod): string | undefined {
  if (pod.spec?.hostNetwork) return undefined;
  const phase = pod.status?.phase;
  if (phase === 'Succeeded' || phase === 'Failed') return undefined;
  const ip = pod.status?.podIP;
  return ip && /^\d{1,3}(\.\d{1,3}){3}$/.test(ip) ? ip : undefined;
}

/**
 * An ingress rule's peers. Manifests and watch events carry `from`; objects deserialized by
 * @kubernetes/client-node carry `_from` (a reserved word in its generated models).
 */
export function ingressPeers(rule: { _from?: unknown; from?: unknown }): import('@kubernetes/client-node').V1NetworkPolicyPeer[] | undefined {
  return (rule.from ?? rule._from) as import('@kubernetes/client-node').V1NetworkPolicyPeer[] | undefined;
}

/**
 * A NetworkPolicy manifest in the shape @kubernetes/client-node serializes: its models name an
 * ingress rule's peers `_from`, and a plain `from` would be silently dropped on the way out
 * (the policy would then allow every peer).
 */
export function toClientPolicy(policy: V1NetworkPolicy): V1NetworkPolicy {
  const ingress = policy.spec?.ingress?.map((rule) => {
    const { from, ...rest } = rule as typeof rule & { from?: unknown };
    return from === undefined ? rule : { ...rest, _from: from as never };
  });
  return ingress ? { ...policy, spec: { ...policy.spec!, ingress } } : policy;
}
