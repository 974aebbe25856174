// Pure translation of a CPS spec into the kernel state Fencer wants: ipsets by logical id and the
// rule bodies of each Fencer chain, for a given choice of kernel set names.
import { sameTargets } from '../../../crds/same-targets.ts';
import type { CompiledPolicySetSpec, IPSetKind, PortMatch, Rule, Target } from '../../../crds/types.ts';
import { sameList } from '../../../runtime/same-list.ts';
import { CHAIN_EGRESS, CHAIN_FORWARD, CHAIN_INGRESS, CHAIN_TOP, COMMENT_PREFIX, chainName, ruleHash, targetChain, type Generation } from './names.ts';

export type IpsetType = 'hash:ip' | 'hash:net' | 'hash:ip,port';

export const IPSET_TYPES: Record<IPSetKind, IpsetType> = { ip: 'hash:ip', net: 'hash:net', ipPort: 'hash:ip,port' };

export interface DesiredSet { id: string; type: IpsetType; members: string[] }

/** Chain name → complete rule lines (`-A CHAIN …`) in order, each with its hash comment. */
export type Chains = Map<string, string[]>;

/** The sets the rules reference (pod groups are dispatched by address, so they need no set). */
export function desiredSets(spec: CompiledPolicySetSpec): DesiredSet[] {
  const { referenced } = ruleShape(spec);
  return spec.ipSets
    .filter((s) => referenced.has(s.name))
    .map((s) => ({ id: s.name, type: IPSET_TYPES[s.kind], members: s.kind === 'net' ? s.members.map((m) => kernelMember(s.kind, m)) : s.members }));
}

/** ipset prints host routes of hash:net sets without "/32"; compare in its own form. */
export function kernelMember(kind: IPSetKind, member: string): string {
  return kind === 'net' && member.endsWith('/32') ? member.slice(0, -3) : member;
}

// Most applies change set members only; walking, rendering and hashing 10k rules again would
// dominate them. The memo keeps what it was computed from and compares field by field (serialising
// the targets to build a key cost more than the member change itself). Specs are values: nothing
// changes one after it was handed over, so keeping references to its parts is safe.
interface RuleShape {
  targets: Target[];
  referenced: Set<string>;
  rendered?: { podMembers: string[][]; names: Map<string, string>; generation: Generation; chains: Chains };
}
let shape: RuleShape | undefined;

function ruleShape(spec: CompiledPolicySetSpec): RuleShape {
  if (shape && sameTargets(shape.targets, spec.targets)) {
    // The next question about this spec is then answered by identity.
    shape.targets = spec.targets;
    return shape;
  }
  const referenced = new Set<string>();
  for (const t of spec.targets) for (const dir of [t.ingress, t.egress]) for (const r of dir?.rules ?? []) {
    for (const p of r.peers) referenced.add(p);
    for (const port of r.ports) if (port.namedPortSet) referenced.add(port.namedPortSet);
  }
  shape = { targets: spec.targets, referenced };
  return shape;
}

/**
 * Every chain of the spec's tree under `generation`'s names, FENCER-FORWARD first (its one rule is
 * the goto to this generation's FENCER-TOP).
 */
export function desiredChains(spec: CompiledPolicySetSpec, setName: (id: string) => string, generation: Generation = 0): Chains {
  const memo = ruleShape(spec);
  const byName = new Map(spec.ipSets.map((s) => [s.name, s]));
  const podMembers = spec.targets.map((t) => byName.get(t.podSet)?.members ?? []);
  const last = memo.rendered;
  if (last && last.generation === generation && podMembers.every((m, i) => sameList(m, last.podMembers[i])) && [...last.names].every(([id, name]) => setName(id) === name)) return last.chains;
  const names = new Map<string, string>();
  const chains = renderChains(spec, (id) => {
    const name = setName(id);
    names.set(id, name);
    return name;
  }, generation);
  memo.rendered = { podMembers, names, generation, chains };
  return chains;
}

function renderChains(spec: CompiledPolicySetSpec, setName: (id: string) => string, generation: Generation): Chains {
  const chains: Chains = new Map();
  const [top, egress, ingress] = [CHAIN_TOP, CHAIN_EGRESS, CHAIN_INGRESS].map((c) => chainName(c, generation));
  for (const chain of [CHAIN_FORWARD, top, egress, ingress]) chains.set(chain, []);
  // A goto: when the tree returns, FORWARD goes on after its jump, and FENCER-FORWARD's later rules
  // (the previous generation's goto, until it is deleted) are never reached.
  addRule(chains, CHAIN_FORWARD, '', 'tree', top, '-g');
  addRule(chains, top, '', 'egress', egress);
  addRule(chains, top, '', 'ingress', ingress);
  const byName = new Map(spec.ipSets.map((s) => [s.name, s]));
  for (const target of spec.targets) {
    const members = byName.get(target.podSet)?.members ?? [];
    for (const direction of ['egress', 'ingress'] as const) {
      const rules = target[direction]?.rules;
      if (!rules) continue;
      const chain = targetChain(direction, target.podSet, generation);
      chains.set(chain, []);
      const dispatch = direction === 'egress' ? egress : ingress;
      for (const ip of members) addRule(chains, dispatch, `${direction === 'egress' ? '-s' : '-d'} ${ip}/32`, `${target.podSet} ${ip}`, chain);
      for (const rule of rules) for (const body of ruleBodies(rule, direction, setName)) addRule(chains, chain, body, rule.id, 'RETURN');
      addRule(chains, chain, '', `default deny ${target.podSet}`, 'DROP');
    }
  }
  return chains;
}

function addRule(chains: Chains, chain: string, match: string, label: string, verdict: string, how: '-j' | '-g' = '-j'): void {
  const lines = chains.get(chain)!;
  const body = `${match ? `${match} ` : ''}${how} ${verdict}`;
  const hash = ruleHash(chain, lines.length, body);
  const matchPart = match ? `${match} ` : '';
  lines.push(`-A ${chain} ${matchPart}-m comment --comment "${COMMENT_PREFIX}${hash} ${label}" ${how} ${verdict}`);
}

/** One line per (peer, port) combination; a rule whose peers or ports resolved to nothing has none. */
function ruleBodies(rule: Rule, direction: 'ingress' | 'egress', setName: (id: string) => string): string[] {
  const remote = direction === 'ingress' ? 'src' : 'dst';
  const peers = rule.anyPeer ? [''] : rule.peers.map((id) => `-m set --match-set ${setName(id)} ${remote}`);
  const ports = rule.anyPort ? [undefined] : rule.ports;
  const out: string[] = [];
  for (const port of ports) for (const peer of peers) out.push(joinMatches(port ? protocolPart(port) : '', peer, port ? portPart(port, setName) : ''));
  return out;
}

function joinMatches(...parts: string[]): string {
  return parts.filter((p) => p !== '').join(' ');
}

function protocolPart(p: PortMatch): string {
  return `-p ${p.protocol.toLowerCase()}`;
}

function portPart(p: PortMatch, setName: (id: string) => string): string {
  if (p.namedPortSet) return `-m set --match-set ${setName(p.namedPortSet)} dst,dst`;
  if (p.port === undefined) return '';
  const proto = p.protocol.toLowerCase();
  return `-m ${proto} --dport ${p.endPort !== undefined ? `${p.port}:${p.endPort}` : p.port}`;
}

/** The hash ids of a chain's lines, in order: what read-back compares. */
export function chainHashes(lines: string[]): string[] {
  return lines.map((l) => /--comment "?fencer:([0-9a-f]{16})/.exec(l)?.[1] ?? '?');
}

