// What the rules of the nodes' CompiledPolicySets allow: egress on the source's node, ingress on the
// destination's node. Reads nothing but the specs, exactly like a dataplane would.
import type { CompiledPolicySetSpec, DirectionRules, IPSet, PortMatch, Rule } from '../crds/types.ts';
import type { Flow } from '../model/cluster.ts';
import { ipPortEntry } from '../operator/compile/named-ports.ts';
import { ipInInterval, parseCidr, parseIPv4 } from '../runtime/ipv4.ts';

interface IndexedSpec { spec: CompiledPolicySetSpec; sets: Map<string, IPSet> }

export class CompiledEvaluator {
  private readonly specs: IndexedSpec[];

  constructor(specs: Iterable<CompiledPolicySetSpec>) {
    this.specs = [...specs].map((spec) => ({ spec, sets: new Map(spec.ipSets.map((s) => [s.name, s])) }));
  }

  allows(flow: Flow): boolean {
    if (flow.srcIP === flow.dstIP) return true;
    return this.directionAllows('egress', flow.srcIP, flow.dstIP, flow) && this.directionAllows('ingress', flow.dstIP, flow.srcIP, flow);
  }

  private directionAllows(direction: 'ingress' | 'egress', localIP: string, remoteIP: string, flow: Flow): boolean {
    for (const { spec, sets } of this.specs) {
      const target = spec.targets.find((t) => sets.get(t.podSet)?.members.includes(localIP));
      if (!target) continue;
      const rules: DirectionRules | undefined = target[direction];
      if (!rules) return true;
      return rules.rules.some((r) => ruleMatches(r, sets, remoteIP, flow));
    }
    return true; // no policy selects the pod (or it is not a pod): not isolated
  }
}

function ruleMatches(rule: Rule, sets: Map<string, IPSet>, remoteIP: string, flow: Flow): boolean {
  const peerOk = rule.anyPeer || rule.peers.some((id) => setContainsAddress(sets.get(id)!, remoteIP));
  const portOk = rule.anyPort || rule.ports.some((p) => portMatches(p, sets, flow));
  return peerOk && portOk;
}

function portMatches(p: PortMatch, sets: Map<string, IPSet>, flow: Flow): boolean {
  if (p.protocol !== flow.protocol) return false;
  if (p.namedPortSet) return sets.get(p.namedPortSet)!.members.includes(ipPortEntry(flow.dstIP, flow.protocol, flow.port));
  if (p.port === undefined) return true;
  return flow.port >= p.port && flow.port <= (p.endPort ?? p.port);
}

function setContainsAddress(set: IPSet, ip: string): boolean {
  if (set.kind === 'ip') return set.members.includes(ip);
  const n = parseIPv4(ip)!;
  return set.members.some((cidr) => {
    const parsed = parseCidr(cidr);
    return parsed.ok && ipInInterval(n, parsed.interval);
  });
}
