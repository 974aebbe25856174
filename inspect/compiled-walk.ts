// What one node's CompiledPolicySet decides for one direction of a flow, rule by rule: the same walk
// as the dataplane (find the target holding the local pod, then its rules in order), keeping every
// rule's outcome so the explanation can say which rule allowed the flow or why none did.
import type { CompiledPolicySetSpec, IPSet, PortMatch, Rule, Target } from '../crds/types.ts';
import type { Flow } from '../model/cluster.ts';
import { ipInInterval, parseCidr, parseIPv4 } from '../runtime/ipv4.ts';
import { ipPortEntry } from '../operator/compile/named-ports.ts';
import type { Direction } from './wording.ts';

export interface IndexedSpec { spec: CompiledPolicySetSpec; sets: Map<string, IPSet> }

export function indexSpec(spec: CompiledPolicySetSpec): IndexedSpec {
  return { spec, sets: new Map(spec.ipSets.map((s) => [s.name, s])) };
}

export interface RuleOutcome {
  rule: Rule;
  peerMatches: boolean;
  portMatches: boolean;
  matches: boolean;
}

export interface CompiledDirection {
  /** The target holding the local pod, if any policy selects it. */
  target?: Target;
  /** A target exists and has rules for this direction (default deny plus the rules). */
  isolated: boolean;
  rules: RuleOutcome[];
  allowed: boolean;
}

/** localIP is the pod the rules protect (the source for egress, the destination for ingress). */
export function walkDirection(indexed: IndexedSpec | undefined, direction: Direction, localIP: string, remoteIP: string, flow: Flow): CompiledDirection {
  const target = indexed?.spec.targets.find((t) => indexed.sets.get(t.podSet)?.members.includes(localIP));
  const rules = target?.[direction]?.rules;
  if (!indexed || !target || !rules) return { target, isolated: false, rules: [], allowed: true };
  const outcomes = rules.map((rule) => {
    const peerMatches = rule.anyPeer || rule.peers.some((id) => setContainsAddress(indexed.sets.get(id), remoteIP));
    const portMatches = rule.anyPort || rule.ports.some((p) => portMatchesFlow(p, indexed.sets, flow));
    return { rule, peerMatches, portMatches, matches: peerMatches && portMatches };
  });
  return { target, isolated: true, rules: outcomes, allowed: outcomes.some((o) => o.matches) };
}

function portMatchesFlow(p: PortMatch, sets: Map<string, IPSet>, flow: Flow): boolean {
  if (p.protocol !== flow.protocol) return false;
  if (p.namedPortSet) return sets.get(p.namedPortSet)?.members.includes(ipPortEntry(flow.dstIP, flow.protocol, flow.port)) ?? false;
  if (p.port === undefined) return true;
  return flow.port >= p.port && flow.port <= (p.endPort ?? p.port);
}

function setContainsAddress(set: IPSet | undefined, ip: string): boolean {
  if (!set) return false;
  if (set.kind === 'ip') return set.members.includes(ip);
  if (set.kind !== 'net') return false;
  const n = parseIPv4(ip);
  if (n === undefined || n === null) return false;
  return set.members.some((cidr) => {
    const parsed = parseCidr(cidr);
    return parsed.ok && ipInInterval(n, parsed.interval);
  });
}
