// Rules and sets of a CompiledPolicySet in plain words, from the origins the compiler records.
import type { IPSet, PortMatch, Rule } from '../crds/types.ts';

export type Direction = 'ingress' | 'egress';

export function ruleName(rule: Pick<Rule, 'policy' | 'index'>, direction: Direction): string {
  return `${rule.policy} ${direction} rule ${rule.index}`;
}

/** "x/allow-from-b ingress rule 0: from pods with pod=b in namespace x, port 80/TCP" */
export function describeRule(rule: Rule, direction: Direction, sets: Map<string, IPSet>): string {
  return `${ruleName(rule, direction)}: ${describePeers(rule, direction, sets)}, ${describePorts(rule, sets)}`;
}

export function describePeers(rule: Rule, direction: Direction, sets: Map<string, IPSet>): string {
  const word = direction === 'ingress' ? 'from' : 'to';
  if (rule.anyPeer) return `${word} anywhere`;
  if (rule.peers.length === 0) return `${word} nothing (every peer of the rule is invalid: see the diagnostics)`;
  return `${word} ${rule.peers.map((id) => describeSet(sets.get(id), id)).join(' or ')}`;
}

export function describePorts(rule: Rule, sets: Map<string, IPSet>): string {
  if (rule.anyPort) return 'any port';
  if (rule.ports.length === 0) return 'no port (every port of the rule is invalid: see the diagnostics)';
  return rule.ports.map((p) => describePort(p, sets)).join(' or ');
}

export function describePort(p: PortMatch, sets: Map<string, IPSet>): string {
  if (p.namedPortSet) {
    const origin = sets.get(p.namedPortSet)?.origin ?? '';
    const name = /^port "([^"]*)"/.exec(origin)?.[1];
    return name === undefined ? `the named port of set ${p.namedPortSet}/${p.protocol}` : `named port "${name}"/${p.protocol}`;
  }
  if (p.port === undefined) return `any ${p.protocol} port`;
  if (p.endPort !== undefined && p.endPort !== p.port) return `ports ${p.port}-${p.endPort}/${p.protocol}`;
  return `port ${p.port}/${p.protocol}`;
}

/** A peer set in words: its origin, with "addresses in" before CIDRs. */
export function describeSet(set: IPSet | undefined, id: string): string {
  if (!set) return `set ${id} (missing from the spec)`;
  return set.kind === 'net' ? `addresses in ${set.origin}` : set.origin;
}

/** Short ports column of `fencer show`: "80/TCP, 8000-8080/UDP, http/TCP", or "any". */
export function portsColumn(rule: Rule, sets: Map<string, IPSet>): string {
  if (rule.anyPort) return 'any';
  if (rule.ports.length === 0) return 'none (invalid)';
  return rule.ports.map((p) => {
    if (p.namedPortSet) {
      const name = /^port "([^"]*)"/.exec(sets.get(p.namedPortSet)?.origin ?? '')?.[1] ?? p.namedPortSet;
      return `${name}/${p.protocol}`;
    }
    if (p.port === undefined) return `any/${p.protocol}`;
    return `${p.port}${p.endPort !== undefined && p.endPort !== p.port ? `-${p.endPort}` : ''}/${p.protocol}`;
  }).join(', ');
}

export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}
