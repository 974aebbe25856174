// Normalizes one NetworkPolicy into the compiler's terms: defaults applied, peers turned into set
// definitions, and everything it cannot honour recorded as a diagnostic that only ever narrows
// what is allowed (fail closed).
import type { V1LabelSelector, V1NetworkPolicy, V1NetworkPolicyPeer, V1NetworkPolicyPort } from '@kubernetes/client-node';
import { ingressPeers, objectKey, type Protocol } from '../../model/cluster.ts';
import { intervalToCidrs, parseCidr, subtract, type Interval } from '../../runtime/ipv4.ts';
import { stableId } from './naming.ts';
import { normalizeProtocol } from './protocols.ts';
import { canonicalSelector, describeSelector, selectorProblem } from './selectors.ts';

export type PodPeer = {
  kind: 'pods';
  id: string;
  /** The policy's own namespace, or a selector over namespaces. */
  namespace?: string;
  namespaceSelector?: V1LabelSelector;
  podSelector: V1LabelSelector;
  origin: string;
};
export type CidrPeer = { kind: 'cidrs'; id: string; intervals: Interval[]; cidrs: string[]; origin: string };
export type PeerDef = PodPeer | CidrPeer;

export interface NormPort { protocol: Protocol; port?: number; endPort?: number; name?: string }

export interface NormRule {
  index: number;
  anyPeer: boolean;
  peers: PeerDef[];
  anyPort: boolean;
  ports: NormPort[];
}

export interface NormPolicy {
  key: string;
  namespace: string;
  /** undefined when the policy's podSelector is malformed: it then isolates its whole namespace. */
  podSelector?: V1LabelSelector;
  ingress?: NormRule[];
  egress?: NormRule[];
  diagnostics: string[];
}

export function normalizePolicy(policy: V1NetworkPolicy): NormPolicy {
  const namespace = policy.metadata?.namespace ?? 'default';
  const key = objectKey({ metadata: { namespace, name: policy.metadata?.name } });
  const spec = policy.spec ?? { podSelector: {} };
  const diagnostics: string[] = [];
  const selectorIssue = selectorProblem(spec.podSelector ?? {});
  if (selectorIssue) diagnostics.push(`spec.podSelector: ${selectorIssue}; isolating every pod of namespace ${namespace} and allowing nothing instead`);
  const types = effectivePolicyTypes(spec.policyTypes, spec.egress?.length ?? 0);
  const ctx = { namespace, diagnostics };
  if (selectorIssue) {
    // Not knowing which pods it selects, the policy isolates them all and allows nothing: its
    // rules applied to pods it may not select could open what other policies close.
    return { key, namespace, ingress: types.has('Ingress') ? [] : undefined, egress: types.has('Egress') ? [] : undefined, diagnostics };
  }
  return {
    key,
    namespace,
    podSelector: spec.podSelector ?? {},
    ingress: types.has('Ingress') ? (spec.ingress ?? []).map((r, i) => normalizeRule(ctx, `spec.ingress[${i}]`, 'from', i, ingressPeers(r), r.ports)) : undefined,
    egress: types.has('Egress') ? (spec.egress ?? []).map((r, i) => normalizeRule(ctx, `spec.egress[${i}]`, 'to', i, r.to, r.ports)) : undefined,
    diagnostics,
  };
}

// Ingress is always implied; Egress only when listed or when there are egress rules.
function effectivePolicyTypes(listed: string[] | undefined, egressRules: number): Set<string> {
  if (listed?.length) return new Set(listed);
  return new Set(egressRules > 0 ? ['Ingress', 'Egress'] : ['Ingress']);
}

interface Ctx { namespace: string; diagnostics: string[] }

function normalizeRule(ctx: Ctx, path: string, peerField: string, index: number, peers: V1NetworkPolicyPeer[] | undefined, ports: V1NetworkPolicyPort[] | undefined): NormRule {
  const anyPeer = !peers?.length;
  const anyPort = !ports?.length;
  return {
    index,
    anyPeer,
    peers: anyPeer ? [] : peers!.flatMap((p, i) => normalizePeer(ctx, `${path}.${peerField}[${i}]`, p)),
    anyPort,
    ports: anyPort ? [] : ports!.flatMap((p, i) => normalizePort(ctx, `${path}.ports[${i}]`, p)),
  };
}

function normalizePeer(ctx: Ctx, path: string, peer: V1NetworkPolicyPeer): PeerDef[] {
  if (peer.ipBlock) return cidrPeer(ctx, path, peer.ipBlock.cidr, peer.ipBlock.except ?? []);
  if (!peer.podSelector && !peer.namespaceSelector) {
    ctx.diagnostics.push(`${path}: a peer needs podSelector, namespaceSelector or ipBlock; it matches nothing`);
    return [];
  }
  const problem = selectorProblem(peer.podSelector ?? {}) ?? selectorProblem(peer.namespaceSelector ?? {});
  if (problem) {
    ctx.diagnostics.push(`${path}: ${problem}; the peer matches nothing`);
    return [];
  }
  const podSelector = peer.podSelector ?? {};
  const nsPart = peer.namespaceSelector ? `nsSelector:${canonicalSelector(peer.namespaceSelector)}` : `ns:${ctx.namespace}`;
  const nsText = peer.namespaceSelector
    ? (canonicalSelector(peer.namespaceSelector) === '' ? 'in any namespace' : `in namespaces with ${describeSelector(peer.namespaceSelector)}`)
    : `in namespace ${ctx.namespace}`;
  return [{
    kind: 'pods',
    id: stableId('p', 'pods', nsPart, canonicalSelector(podSelector)),
    namespace: peer.namespaceSelector ? undefined : ctx.namespace,
    namespaceSelector: peer.namespaceSelector,
    podSelector,
    origin: `pods with ${describeSelector(podSelector)} ${nsText}`,
  }];
}

function cidrPeer(ctx: Ctx, path: string, cidr: string, except: string[]): PeerDef[] {
  const base = parseCidr(cidr);
  if (!base.ok) {
    ctx.diagnostics.push(`${path}.ipBlock.cidr: ${base.reason}; the peer matches nothing`);
    return [];
  }
  const holes: Interval[] = [];
  for (const [i, e] of except.entries()) {
    const hole = parseCidr(e);
    if (!hole.ok) {
      // Ignoring an except would widen the peer, so the whole peer is dropped instead.
      ctx.diagnostics.push(`${path}.ipBlock.except[${i}]: ${hole.reason}; the peer matches nothing`);
      return [];
    }
    holes.push(hole.interval);
  }
  const intervals = subtract(base.interval, holes);
  const cidrs = intervals.flatMap(intervalToCidrs);
  const origin = except.length ? `${cidr} except ${except.join(', ')}` : cidr;
  return [{ kind: 'cidrs', id: stableId('p', 'cidrs', origin), intervals, cidrs, origin }];
}

function normalizePort(ctx: Ctx, path: string, p: V1NetworkPolicyPort): NormPort[] {
  const protocol = normalizeProtocol(p.protocol);
  if (!protocol) {
    ctx.diagnostics.push(`${path}.protocol: unsupported protocol "${p.protocol}"; the port matches nothing`);
    return [];
  }
  if (p.port === undefined || p.port === null) {
    // The apiserver refuses an endPort without a port; offline manifests may still carry one.
    if (p.endPort !== undefined && p.endPort !== null) {
      ctx.diagnostics.push(`${path}.endPort: ${p.endPort} without a port; the port matches nothing`);
      return [];
    }
    return [{ protocol }];
  }
  if (typeof p.port === 'string') {
    if (p.endPort !== undefined) ctx.diagnostics.push(`${path}.endPort: ignored with the named port "${p.port}"`);
    return [{ protocol, name: p.port }];
  }
  const port = p.port;
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    ctx.diagnostics.push(`${path}.port: ${port} is not a port number; the port matches nothing`);
    return [];
  }
  if (p.endPort === undefined || p.endPort === null) return [{ protocol, port }];
  if (!Number.isInteger(p.endPort) || p.endPort < port || p.endPort > 65535) {
    ctx.diagnostics.push(`${path}.endPort: ${p.endPort} is not a port at or above ${port}; the port matches nothing`);
    return [];
  }
  return [p.endPort === port ? { protocol, port } : { protocol, port, endPort: p.endPort }];
}
