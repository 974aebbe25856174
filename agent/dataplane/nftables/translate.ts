// Pure translation of a CPS spec into what Fencer's nftables table should hold: named sets, the two
// dispatch maps and the chains with their rules, in order. A packet of a NEW connection goes
// through `forward`: one map lookup by source address jumps to the chain of the source pod's
// egress target, one by destination address to the destination pod's ingress target; those chains
// `return` on the first rule that matches and end in `drop`. The rules a packet meets grow with its
// target's rules, never with the number of local pods.
import { sameTargets } from '../../../crds/same-targets.ts';
import type { CompiledPolicySetSpec, IPSetKind, PortMatch, Rule, Target } from '../../../crds/types.ts';
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
      for (const rule of rules) {
        for (const body of ruleBodies(rule, direction, referenced)) add(chain, body, checkedId(rule.id));
      }
      // Drop is final: no other table's accept can let the packet through.
      add(chain, 'drop', `default deny ${target.podSet}`);
    }
  }
  return { chains, referenced: [...referenced].sort() };
}

/** One rule per (port, peer) combination, ports first as the iptables backend orders them. */
function ruleBodies(rule: Rule, direction: Direction, referenced: Set<string>): string[] {
  const remote = direction === 'ingress' ? 'saddr' : 'daddr';
  const use = (id: string) => {
    referenced.add(checkedId(id));
    return id;
  };
  // A rule whose peers or ports resolved to nothing has no line: it allows nothing.
  const peers = rule.anyPeer ? [''] : rule.peers.map((id) => `ip ${remote} @${use(id)}`);
  const ports = rule.anyPort ? [''] : rule.ports.map((p) => portMatch(p, use));
  const out: string[] = [];
  for (const port of ports) for (const peer of peers) out.push([peer, port, 'return'].filter((s) => s !== '').join(' '));
  return out;
}

const PROTOCOLS = { TCP: 'tcp', UDP: 'udp', SCTP: 'sctp' } as const;

function portMatch(p: PortMatch, use: (id: string) => string): string {
  const proto = PROTOCOLS[p.protocol];
  if (!proto) throw new Error(`unsupported protocol ${JSON.stringify(p.protocol)}`);
  // The set's key carries the protocol too; the explicit match keeps the rule as narrow as `-p`.
  if (p.namedPortSet) return `meta l4proto ${proto} ip daddr . meta l4proto . th dport @${use(p.namedPortSet)}`;
  if (p.port === undefined) return `meta l4proto ${proto}`;
  const [low, high] = [p.port, p.endPort ?? p.port];
  if (![low, high].every((n) => Number.isInteger(n) && n >= 1 && n <= 65535) || high < low) throw new Error(`bad port range ${low}-${high}`);
  return `${proto} dport ${high === low ? low : `${low}-${high}`}`;
}
