// Pure translation of a CPS spec into the HNS objects a Windows node needs: the network's set policies
// and, per local pod IP, the complete list of Fencer's ACLs for its endpoint. Every direction of a pod
// Fencer manages ends explicitly: an isolated one with a Block-all after its Allows, an open one with an
// Allow-all, so the outcome never depends on an HNS default. A peer set, port list or named port that
// resolves to nothing yields no ACL at all: in HNS an empty address or port field means ANY.
import type { CompiledPolicySetSpec, DirectionRules, IPSet, PortMatch, Rule, Target } from '../../../crds/types.ts';
import {
  DEFAULT_INGRESS_PEER_FIELD, PREFIX, PRIORITY, PROTOCOL_NUMBERS, destinationPortField, peerField, sortAcls,
  type AclAction, type AclDirection, type AclPolicy, type IngressPeerField, type SetPolicy,
} from './hns-types.ts';
import { addressMatcher, derivedSetId, ipsByPort, parseIpPort, portsOf, type IpPortMember } from './named-ports.ts';

export interface TranslateOptions {
  /** Which field of an In ACL names the peer sets (see hns-types.ts). */
  ingressPeerField?: IngressPeerField;
  /** The node's own addresses, allowed In on every isolated endpoint (kubelet probes). */
  hostIPs?: string[];
  /** false when the node's HNS rejects protocol 132: SCTP port matches then allow nothing (fail closed). */
  sctp?: boolean;
}

export interface HnsDesired {
  /** Every set policy an ACL references, sorted by Id. */
  setPolicies: SetPolicy[];
  /** Pod IP → Fencer's complete ACL list for that pod's endpoint, sorted; IPs ascending. */
  endpoints: Map<string, AclPolicy[]>;
  /** What HNS could not express; the affected traffic is blocked (fail closed). */
  diagnostics: string[];
}

/** One way a rule's port part matched: a protocol, a destination port string, and optionally own remote sets. */
interface PortSpec { protocol?: string; port?: string; remote?: string[] }

export function translateSpec(spec: CompiledPolicySetSpec, opts: TranslateOptions = {}): HnsDesired {
  if (spec.ipSets.some((s) => s.membersGzip)) throw new Error('translateSpec takes an expanded spec (crds/codec.ts expandSpec)');
  const t = new Translation(spec, opts);
  const endpoints = new Map<string, AclPolicy[]>();
  for (const target of spec.targets) {
    for (const ip of t.sets.get(target.podSet)?.members ?? []) endpoints.set(ip, t.endpointAcls(target, ip));
  }
  const byIp = [...endpoints.entries()].sort(([a], [b]) => compareIPs(a, b));
  return { setPolicies: [...t.used.values()].sort((a, b) => (a.Id < b.Id ? -1 : 1)), endpoints: new Map(byIp), diagnostics: [...t.diagnostics].sort() };
}

class Translation {
  readonly sets: Map<string, IPSet>;
  readonly used = new Map<string, SetPolicy>();
  /** Set policies a rule may name; only those an emitted ACL names end up in `used`. */
  private readonly candidates = new Map<string, SetPolicy>();
  readonly diagnostics = new Set<string>();
  private readonly ingressPeerField: IngressPeerField;
  private readonly hostIPs: string[];
  private readonly sctp: boolean;
  private readonly ipPorts = new Map<string, IpPortMember[]>();
  private readonly matchers = new Map<string, (ip: string) => boolean>();

  constructor(spec: CompiledPolicySetSpec, opts: TranslateOptions) {
    this.sets = new Map(spec.ipSets.map((s) => [s.name, s]));
    this.ingressPeerField = opts.ingressPeerField ?? DEFAULT_INGRESS_PEER_FIELD;
    this.hostIPs = opts.hostIPs ?? [];
    this.sctp = opts.sctp ?? true;
  }

  endpointAcls(target: Target, ip: string): AclPolicy[] {
    return sortAcls([...this.direction('In', target.ingress, ip), ...this.direction('Out', target.egress, ip)]);
  }

  private direction(d: AclDirection, rules: DirectionRules | undefined, ip: string): AclPolicy[] {
    if (!rules) return [this.acl('open', 'Allow', d, PRIORITY.open, {})];
    const out = d === 'In' ? this.hostAllow() : [];
    for (const rule of rules.rules) out.push(...this.ruleAcls(d, rule, ip));
    out.push(this.acl('deny', 'Block', d, PRIORITY.deny, {}));
    return out;
  }

  private hostAllow(): AclPolicy[] {
    if (this.hostIPs.length === 0) return [];
    const id = this.useSet({ Id: `${PREFIX}node`, Name: 'node addresses', PolicyType: 'IPSET', Values: this.hostIPs.join(',') });
    return [this.acl('host', 'Allow', 'In', PRIORITY.host, { [peerField('In', this.ingressPeerField)]: id })];
  }

  /** The Allow ACLs of one rule: one per (peer set, port spec); none when peers or ports resolve to nothing. */
  private ruleAcls(d: AclDirection, rule: Rule, ip: string): AclPolicy[] {
    const peers = rule.anyPeer ? undefined : this.peerSets(rule);
    if (peers && peers.length === 0) return [];
    const specs: PortSpec[] = rule.anyPort ? [{}] : rule.ports.flatMap((p) => this.portSpecs(d, rule, p, ip, peers));
    const out: AclPolicy[] = [];
    for (const spec of specs) {
      for (const remote of spec.remote ?? peers ?? [undefined]) {
        if (remote) this.useSet(this.candidates.get(remote)!);
        out.push(this.acl(rule.id, 'Allow', d, PRIORITY.allow, { Protocols: spec.protocol, [peerField(d, this.ingressPeerField)]: remote, [destinationPortField(d)]: spec.port }));
      }
    }
    return out;
  }

  /** Set policy Ids of the rule's non-empty peer sets. */
  private peerSets(rule: Rule): string[] {
    const ids: string[] = [];
    for (const name of rule.peers) {
      const set = this.sets.get(name);
      if (!set) this.diagnostics.add(`${rule.policy} rule ${rule.id}: peer set ${name} is missing; it matches nothing`);
      else if (set.members.length > 0) ids.push(this.candidate({ Id: `${PREFIX}${name}`, Name: name, PolicyType: 'IPSET', Values: set.members.join(',') }));
    }
    return ids;
  }

  private portSpecs(d: AclDirection, rule: Rule, p: PortMatch, ip: string, peers: string[] | undefined): PortSpec[] {
    const protocol = this.protocolNumber(rule, p);
    if (!protocol) return [];
    if (p.namedPortSet) return d === 'In' ? this.ingressNamed(rule, p, ip, protocol) : this.egressNamed(rule, p, protocol, peers);
    if (p.port === undefined) return [{ protocol }];
    const range = p.endPort !== undefined && p.endPort !== p.port;
    return [{ protocol, port: range ? `${p.port}-${p.endPort}` : String(p.port) }];
  }

  private protocolNumber(rule: Rule, p: PortMatch): string | undefined {
    if (p.protocol === 'SCTP' && !this.sctp) {
      this.diagnostics.add(`${rule.policy} rule ${rule.id}: SCTP is disabled for this node's HNS; the SCTP port match allows nothing`);
      return undefined;
    }
    return PROTOCOL_NUMBERS[p.protocol];
  }

  /** Ingress: the destination is this endpoint, so the named port is its own resolved port(s). */
  private ingressNamed(rule: Rule, p: PortMatch, ip: string, protocol: string): PortSpec[] {
    return portsOf(this.namedMembers(rule, p.namedPortSet!), ip, p.protocol).map((port) => ({ protocol, port: String(port) }));
  }

  /** Egress: one derived IPSET per port, of the destinations serving it (restricted to the peers). */
  private egressNamed(rule: Rule, p: PortMatch, protocol: string, peers: string[] | undefined): PortSpec[] {
    const out: PortSpec[] = [];
    const inPeers = (ip: string) => rule.peers.some((name) => this.matcher(name)(ip));
    for (const [port, ips] of ipsByPort(this.namedMembers(rule, p.namedPortSet!), p.protocol)) {
      const values = peers ? ips.filter(inPeers) : ips;
      if (values.length === 0) continue;
      const parts = [p.namedPortSet!, peers ? [...rule.peers].sort().join('+') : '*', protocol, String(port)];
      const id = this.candidate({ Id: derivedSetId(parts), Name: `${parts[0]} ${parts[1]} ${p.protocol.toLowerCase()}:${port}`, PolicyType: 'IPSET', Values: values.join(',') });
      out.push({ protocol, port: String(port), remote: [id] });
    }
    return out;
  }

  private namedMembers(rule: Rule, name: string): IpPortMember[] {
    let members = this.ipPorts.get(name);
    if (members) return members;
    members = [];
    const set = this.sets.get(name);
    if (!set) this.diagnostics.add(`${rule.policy} rule ${rule.id}: named port set ${name} is missing; it matches nothing`);
    for (const m of set?.members ?? []) {
      const parsed = parseIpPort(m);
      if (parsed) members.push(parsed);
      else this.diagnostics.add(`named port set ${name}: member "${m}" is not IP,proto:port; it matches nothing`);
    }
    this.ipPorts.set(name, members);
    return members;
  }

  private matcher(name: string): (ip: string) => boolean {
    let m = this.matchers.get(name);
    if (!m) {
      const set = this.sets.get(name);
      m = set ? addressMatcher(set) : () => false;
      this.matchers.set(name, m);
    }
    return m;
  }

  private candidate(set: SetPolicy): string {
    this.candidates.set(set.Id, set);
    return set.Id;
  }

  private useSet(set: SetPolicy): string {
    this.used.set(set.Id, set);
    return set.Id;
  }

  private acl(id: string, action: AclAction, d: AclDirection, priority: number, fields: Partial<Record<'Protocols' | 'LocalAddresses' | 'RemoteAddresses' | 'LocalPorts' | 'RemotePorts', string>>): AclPolicy {
    // Built in HNS's field order, so the JSON reads like hcn.AclPolicySetting.
    const acl = { Id: `${PREFIX}${id}`, Action: action, Direction: d } as AclPolicy;
    for (const f of ['Protocols', 'LocalAddresses', 'RemoteAddresses', 'LocalPorts', 'RemotePorts'] as const) if (fields[f]) acl[f] = fields[f];
    acl.RuleType = 'Switch';
    acl.Priority = priority;
    return acl;
  }
}

function compareIPs(a: string, b: string): number {
  const n = (ip: string) => ip.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
  return n(a) - n(b);
}
