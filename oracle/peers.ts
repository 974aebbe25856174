// NetworkPolicyPeer matching: which remote endpoints a from/to entry stands for.
import type { V1IPBlock, V1NetworkPolicyPeer } from '@kubernetes/client-node';
import type { ClusterSnapshot } from '../model/cluster.ts';
import type { Endpoint } from './endpoints.ts';
import { namespaceLabels, namespaceOf, podLabels } from './endpoints.ts';
import { cidrContains, isIPv6Text, parseCidr, parseIPv4 } from './ipv4.ts';
import { selectorMatches } from './selectors.ts';

/**
 * Every field the peer sets must match. The API server forbids ipBlock together with a selector,
 * so requiring both is only a fail-closed choice for malformed input.
 */
export function peerMatches(
  cluster: ClusterSnapshot,
  policyNamespace: string,
  peer: V1NetworkPolicyPeer,
  remote: Endpoint,
): boolean {
  const hasPodSel = peer.podSelector != null;
  const hasNsSel = peer.namespaceSelector != null;
  const hasIpBlock = peer.ipBlock != null;
  if (!hasPodSel && !hasNsSel && !hasIpBlock) return false;
  if (hasIpBlock && !ipBlockMatches(peer.ipBlock!, remote.ip)) return false;
  if (hasPodSel || hasNsSel) {
    const pod = remote.pod;
    if (!pod) return false;
    const podNs = namespaceOf(pod);
    // Without a namespaceSelector, a podSelector is confined to the policy's own namespace.
    const nsOk = hasNsSel
      ? selectorMatches(peer.namespaceSelector!, namespaceLabels(cluster, podNs))
      : podNs === policyNamespace;
    if (!nsOk) return false;
    if (hasPodSel && !selectorMatches(peer.podSelector!, podLabels(pod))) return false;
  }
  return true;
}

/** except carves addresses out of this peer only; another peer or rule may still allow them. */
export function ipBlockMatches(block: V1IPBlock, ipText: string): boolean {
  const ip = parseIPv4(ipText);
  if (ip === undefined || isIPv6Text(block.cidr)) return false;
  const cidr = parseCidr(block.cidr);
  if (!cidr) return false;
  if (!cidrContains(cidr, ip)) return false;
  for (const exceptText of block.except ?? []) {
    // An IPv6 exception cannot contain an IPv4 address, so it excludes nothing.
    if (isIPv6Text(exceptText)) continue;
    const except = parseCidr(exceptText);
    // An unparseable exception makes the whole block unusable rather than silently widening it.
    if (!except) return false;
    if (cidrContains(except, ip)) return false;
  }
  return true;
}
