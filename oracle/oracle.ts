// Reference evaluator of networking.k8s.io/v1 NetworkPolicy: a direct reading of the API docs,
// deliberately sharing no code with the compiler so that the two can be checked against each other.
import type { V1NetworkPolicy, V1NetworkPolicyPeer, V1NetworkPolicyPort } from '@kubernetes/client-node';
import type { ClusterSnapshot, Flow } from '../model/cluster.ts';
import { objectKey } from '../model/cluster.ts';
import type { Endpoint } from './endpoints.ts';
import { endpointFor, namespaceOf, podLabels } from './endpoints.ts';
import { peerMatches } from './peers.ts';
import { portMatches } from './ports.ts';
import { selectorMatches } from './selectors.ts';

export interface Verdict {
  allowed: boolean;
  egress: DirectionVerdict;
  ingress: DirectionVerdict;
}

export interface DirectionVerdict {
  isolated: boolean;
  allowed: boolean;
  /** Every rule that admits the flow, not just the first: policies are a union. */
  allowedBy: Array<{ policy: string /* ns/name */; index: number }>;
  /** Policies that isolate the local pod in this direction (select it and have this policyType). */
  selectedBy: string[];
}

type Direction = 'Ingress' | 'Egress';

interface Rule {
  peers: V1NetworkPolicyPeer[] | undefined;
  ports: V1NetworkPolicyPort[] | undefined;
}

export function oracleVerdict(cluster: ClusterSnapshot, flow: Flow): Verdict {
  const src = endpointFor(cluster, flow.srcIP);
  const dst = endpointFor(cluster, flow.dstIP);
  const egress = evaluateDirection(cluster, flow, 'Egress', src, dst);
  const ingress = evaluateDirection(cluster, flow, 'Ingress', dst, src);
  // Traffic from a pod to itself never crosses the policy boundary.
  if (flow.srcIP === flow.dstIP) {
    return { allowed: true, egress: { ...egress, allowed: true }, ingress: { ...ingress, allowed: true } };
  }
  return { allowed: egress.allowed && ingress.allowed, egress, ingress };
}

export function oracleAllows(cluster: ClusterSnapshot, flow: Flow): boolean {
  return oracleVerdict(cluster, flow).allowed;
}

/** local is the pod the policy would protect; remote is the other side. */
function evaluateDirection(
  cluster: ClusterSnapshot,
  flow: Flow,
  direction: Direction,
  local: Endpoint,
  remote: Endpoint,
): DirectionVerdict {
  const verdict: DirectionVerdict = { isolated: false, allowed: true, allowedBy: [], selectedBy: [] };
  const pod = local.pod;
  if (!pod) return verdict;
  const podNs = namespaceOf(pod);
  // Named ports always name a port of the flow's destination, whichever side the policy protects.
  const destinationPod = direction === 'Ingress' ? local.pod : remote.pod;

  for (const policy of cluster.policies) {
    const policyNs = namespaceOf(policy);
    if (policyNs !== podNs) continue;
    if (!selectorMatches(policy.spec?.podSelector ?? {}, podLabels(pod))) continue;
    if (!effectivePolicyTypes(policy).includes(direction)) continue;
    const key = objectKey({ metadata: { namespace: policyNs, name: policy.metadata?.name } });
    verdict.selectedBy.push(key);
    rulesOf(policy, direction).forEach((rule, index) => {
      if (ruleMatches(cluster, policyNs, rule, flow, remote, destinationPod)) verdict.allowedBy.push({ policy: key, index });
    });
  }
  verdict.isolated = verdict.selectedBy.length > 0;
  verdict.allowed = !verdict.isolated || verdict.allowedBy.length > 0;
  return verdict;
}

/** Without explicit policyTypes a policy always isolates ingress, and egress only once it has egress rules. */
export function effectivePolicyTypes(policy: V1NetworkPolicy): Direction[] {
  const declared = policy.spec?.policyTypes;
  if (declared && declared.length > 0) {
    return declared.filter((t): t is Direction => t === 'Ingress' || t === 'Egress');
  }
  return (policy.spec?.egress?.length ?? 0) > 0 ? ['Ingress', 'Egress'] : ['Ingress'];
}

// The generated client types call the ingress peer list "_from", but objects read straight from
// YAML or JSON carry the wire name "from"; accept either so both kinds of snapshot work.
function rulesOf(policy: V1NetworkPolicy, direction: Direction): Rule[] {
  if (direction === 'Ingress') {
    return (policy.spec?.ingress ?? []).map((r) => ({
      peers: r._from ?? (r as { from?: V1NetworkPolicyPeer[] }).from,
      ports: r.ports,
    }));
  }
  return (policy.spec?.egress ?? []).map((r) => ({ peers: r.to, ports: r.ports }));
}

/** An absent or empty list means "any", for peers and ports alike. */
function ruleMatches(
  cluster: ClusterSnapshot,
  policyNs: string,
  rule: Rule,
  flow: Flow,
  remote: Endpoint,
  destinationPod: Endpoint['pod'],
): boolean {
  const peerOk =
    !rule.peers || rule.peers.length === 0 || rule.peers.some((p) => peerMatches(cluster, policyNs, p, remote));
  const portOk =
    !rule.ports || rule.ports.length === 0 || rule.ports.some((p) => portMatches(p, flow, destinationPod));
  return peerOk && portOk;
}
