// Pure translation of a CPS spec into what Fencer's nftables table should hold: named sets, the two
// dispatch maps and the chains with their rules, in order. A packet of a NEW connection goes
// through `forward`: one map lookup by source address jumps to the chain of the source pod's
// egress target, one by destination address to the destination pod's ingress target; those chains
// `return` on the first rule that matches and end in `drop`. The rules a packet meets grow with its
// target's rules, never with the number of local pods.
import { sameTargets } from '../../../crds/same-targets.ts';
import type { CompiledPolicySetSpec, IPSetKind, PortMatch, Rule, Target } from '../../../crds/types.ts';
import { mergeIntervals, type Interval } from '../../../runtime/ipv4.ts';
import { setElements } from './elements.ts';
import { COMMENT_PREFIX, DISPATCH_MAPS, FORWARD_CHAIN, checkedId, ruleHash, targetChain, type Direction } from './names.ts';

export interface DesiredSet { name: string; kind: IPSetKind; elements: readonly string[] }

/** `text` is the whole rule as written after `add rule inet fencer <chain>`, comment included. */
export interface DesiredRule { hash: string; text: string }

export interface Desired {
  /** Sorted by name. */
  sets: DesiredSet[];
  /** Local pod address → the chain its packets jump to. */
  maps: Record<Direction, Array<[string, string]>>;
  /** `forward` first, then the targets' chains in spec order. */
  chains: Map<string, DesiredRule[]>;
  /** Maps count as sets and their entries as entries: in the kernel both are nft sets. */
  counts: { rules: number; sets: number; entries: number };
}

// Most applies change members only; rendering and hashing 10k rules again would dominate them. The
// rules depend on the targets alone (pods are dispatched through maps), so one memo compared field
// by field serves every member change. Specs are values: nothing changes one after it was handed over.
let memo: { targets: Target[]; chains: Map<string, DesiredRule[]>; referenced: string[] } | undefined;

export function desiredState(spec: CompiledPolicySetSpec): Desired {
  if (!memo || !sameTargets(memo.targets, spec.targets)) memo = { targets: spec.targets, ...renderChains(spec.targets) };
  const { chains, referenced } = memo;
  const byName = new Map(spec.ipSets.map((s) => [s.name, s]));
  const sets = referenced.map((name) => {
    const set = byName.get(name);
    if (!set) throw new Error(`a rule references set "${name}", which the spec does not carry`);
    return { name, kind: set.kind, elements: setElements(set.kind, set.members) };
  });
  const maps: Desired['maps'] = { egress: [], ingress: [] };
  for (const t of spec.targets) {
    const pods = setElements('ip', byName.get(t.podSet)?.members ?? []);
    for (const direction of ['egress', 'ingress'] as const) {
      if (t[direction]) for (const ip of pods) maps[direction].push([ip, targetChain(direction, t.podSet)]);
    }
  }
  let rules = 0;
  for (const list of chains.values()) rules += list.length;
  const entries = sets.reduce((n, s) => n + s.elements.length, 0) + maps.egress.length + maps.ingress.length;
  return { sets, maps, chains, counts: { rules, sets: sets.length + Object.keys(DISPATCH_MAPS).length, entries } };
}

function renderChains(targets: Target[]): { chains: Map<string, DesiredRule[]>; referenced: string[] } {
  const chains = new Map<string, DesiredRule[]>();
  const referenced = new Set<string>();
  const add = (chain: string, body: string, label: string) => {
    const rules = chains.get(chain)!;
    rules.push({ hash: ruleHash(chain, rules.length, body), text: `${body} comment "${COMMENT_PREFIX}${ruleHash(chain, rules.length, body)} ${label}"` });
  };
  chains.set(FORWARD_CHAIN, []);
  // Replies and established connections never reach the targets' chains (decisions.md 8): accept
  // ends only this table's chain, so every other table still judges the packet.
  add(FORWARD_CHAIN, 'ct state != new accept', 'only new connections');
  add(FORWARD_CHAIN, `ip saddr vmap @${DISPATCH_MAPS.egress}`, 'egress');
  add(FORWARD_CHAIN, `ip daddr vmap @${DISPATCH_MAPS.ingress}`, 'ingress');
  for (const target of targets) {
    for (const direction of ['egress', 'ingress'] as const) {
      const rules = target[direction]?.rules;
      if (!rules) continue;
      const chain = targetChain(direction, target.podSet);
      chains.set(chain, []);
      for (const { body, label } of foldedRules(rules, direction, referenced)) add(chain, body, label);
      // Drop is final: no other table's accept can let the packet through.
      add(chain, 'drop', `default deny ${target.podSet}`);
    }
  }
  return { chains, referenced: [...referenced].sort() };
}

/** What one peer (or any peer) is allowed to, gathered over every rule of a target's direction. */
interface PeerAllows { label: string; anyPort: boolean; anyOf: Set<Proto>; ports: Map<Proto, Interval[]>; named: string[] }

/**
 * Every rule of a target chain returns (allows) and the chain ends in drop, so the order of its
 * rules changes no verdict: the rules of all the policies selecting the target are folded by peer,
 * a peer's ports are merged into disjoint ranges per protocol (a port repeated across rules, or
 * ports that touch, become one rule), and any port of a protocol covers that protocol's ranges.
 * Not one anonymous set per peer: nft fetches every set of the table, anonymous ones too, before
 * each transaction, and 1000 of them made a one-member change 4–7 ms instead of 3–4 at 100k
 * entries (decisions.md 14).
 */
function foldedRules(rules: Rule[], direction: Direction, referenced: Set<string>): Array<{ body: string; label: string }> {
  const remote = direction === 'ingress' ? 'saddr' : 'daddr';
  const use = (id: string) => {
    referenced.add(checkedId(id));
    return id;
  };
  const byPeer = new Map<string, PeerAllows>();
  for (const rule of rules) {
    // A rule whose peers or ports resolved to nothing allows nothing.
    const peers = rule.anyPeer ? [''] : rule.peers.map((id) => `ip ${remote} @${use(id)}`);
    for (const peer of peers) {
      let a = byPeer.get(peer);
      if (!a) byPeer.set(peer, (a = { label: checkedId(rule.id), anyPort: false, anyOf: new Set(), ports: new Map(), named: [] }));
      if (rule.anyPort) a.anyPort = true;
      else for (const p of rule.ports) addPort(a, p, use);
    }
  }
  const out: Array<{ body: string; label: string }> = [];
  const emit = (label: string, ...parts: string[]) => out.push({ body: [...parts.filter((x) => x !== ''), 'return'].join(' '), label });
  for (const [peer, a] of byPeer) {
    if (a.anyPort) {
      emit(a.label, peer);
      continue;
    }
    for (const proto of a.anyOf) emit(a.label, peer, `meta l4proto ${proto}`);
    for (const [proto, ranges] of a.ports) {
      if (a.anyOf.has(proto)) continue;
      for (const { start, end } of mergeIntervals(ranges)) emit(a.label, peer, `${proto} dport ${start === end ? start : `${start}-${end}`}`);
    }
    for (const match of new Set(a.named)) emit(a.label, peer, match);
  }
  return out;
}

type Proto = (typeof PROTOCOLS)[keyof typeof PROTOCOLS];

function addPort(a: PeerAllows, p: PortMatch, use: (id: string) => string): void {
  const proto = PROTOCOLS[p.protocol];
  if (!proto) throw new Error(`unsupported protocol ${JSON.stringify(p.protocol)}`);
  // The set's key carries the protocol too; the explicit match keeps the rule as narrow as `-p`.
  if (p.namedPortSet) {
    a.named.push(`meta l4proto ${proto} ip daddr . meta l4proto . th dport @${use(p.namedPortSet)}`);
    return;
  }
  if (p.port === undefined) {
    a.anyOf.add(proto);
    return;
  }
  const [low, high] = [p.port, p.endPort ?? p.port];
  if (![low, high].every((n) => Number.isInteger(n) && n >= 1 && n <= 65535) || high < low) throw new Error(`bad port range ${low}-${high}`);
  const list = a.ports.get(proto) ?? [];
  list.push({ start: low, end: high });
  a.ports.set(proto, list);
}

const PROTOCOLS = { TCP: 'tcp', UDP: 'udp', SCTP: 'sctp' } as const;
