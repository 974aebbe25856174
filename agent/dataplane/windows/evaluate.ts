// An evaluator of HNS ACL semantics, as Fencer models them (docs/windows.md says which parts a Windows node
// must confirm). It shares only the HNS types and the IPv4 parser with the translator, so the property
// test checks the translation and not a copy of it.
// - Direction: Out is evaluated on the sender's endpoint, In on the receiver's. Only the first packet of a
//   connection is evaluated: VFP ACLs are stateful, replies and the rest of an allowed flow pass.
// - Order: ACLs by Priority ascending; the first priority level holding a matching ACL decides. If an Allow
//   and a Block both match at that level, Block wins (a conservative reading; Fencer never does this).
// - Match: an absent or empty field matches anything; Protocols lists protocol numbers ("256" = any);
//   addresses list IPs, CIDRs or set policy Ids (IPSET values expand to IPs/CIDRs, NESTEDIPSET to other
//   sets); ports list numbers or "first-last" ranges.
// - Defaults: an endpoint with no ACL in a direction is not filtered there; one with ACLs but no match is
//   "unspecified" (no hidden default is assumed: Fencer's translation always ends a direction explicitly).
// - Address roles: Out ACLs read LocalAddresses as the source and RemoteAddresses as the destination. For
//   In ACLs the peer (source) sits in the field chosen by IngressPeerField, the other field is the destination.
import type { Flow, Protocol } from '../../../model/cluster.ts';
import { ipInInterval, parseCidr, parseIPv4 } from '../../../runtime/ipv4.ts';
import { DEFAULT_INGRESS_PEER_FIELD, type AclDirection, type AclPolicy, type IngressPeerField, type SetPolicy } from './hns-types.ts';

export type Verdict = 'allow' | 'block' | 'unspecified';

export interface Packet { src: string; dst: string; protocol: Protocol; port: number }

export interface HnsNode { setPolicies: SetPolicy[]; endpoints: Map<string, AclPolicy[]> }

const NUMBERS: Record<Protocol, string> = { TCP: '6', UDP: '17', SCTP: '132' };

/** The verdict of one endpoint's ACL list for one direction, and the ACL that decided it. */
export function evaluateEndpoint(acls: AclPolicy[], direction: AclDirection, packet: Packet, sets: Map<string, SetPolicy>, ingressPeerField: IngressPeerField = DEFAULT_INGRESS_PEER_FIELD): { verdict: Verdict; acl?: AclPolicy } {
  const mine = acls.filter((a) => a.Direction === direction);
  if (mine.length === 0) return { verdict: 'allow' };
  const priorities = [...new Set(mine.map((a) => a.Priority))].sort((a, b) => a - b);
  for (const priority of priorities) {
    const hits = mine.filter((a) => a.Priority === priority && aclMatches(a, packet, sets, ingressPeerField));
    const block = hits.find((a) => a.Action === 'Block');
    if (block) return { verdict: 'block', acl: block };
    if (hits.length) return { verdict: 'allow', acl: hits[0] };
  }
  return { verdict: 'unspecified' };
}

export function aclMatches(acl: AclPolicy, p: Packet, sets: Map<string, SetPolicy>, ingressPeerField: IngressPeerField): boolean {
  if (acl.RuleType !== 'Switch') throw new Error(`ACL ${acl.Id}: only RuleType Switch is modelled`);
  const sourceIsLocal = acl.Direction === 'Out' || ingressPeerField === 'LocalAddresses';
  const [localAddr, remoteAddr] = sourceIsLocal ? [p.src, p.dst] : [p.dst, p.src];
  const [destPorts, sourcePorts] = acl.Direction === 'In' ? [acl.LocalPorts, acl.RemotePorts] : [acl.RemotePorts, acl.LocalPorts];
  if (sourcePorts) throw new Error(`ACL ${acl.Id}: source ports are not modelled`);
  return protocolMatches(acl.Protocols, p.protocol)
    && addressesMatch(acl.LocalAddresses, localAddr, sets)
    && addressesMatch(acl.RemoteAddresses, remoteAddr, sets)
    && portsMatch(destPorts, p.port);
}

function protocolMatches(field: string | undefined, protocol: Protocol): boolean {
  if (!field) return true;
  const list = field.split(',').map((s) => s.trim());
  return list.includes('256') || list.includes(NUMBERS[protocol]);
}

function portsMatch(field: string | undefined, port: number): boolean {
  if (!field) return true;
  return field.split(',').some((item) => {
    const [lo, hi] = item.trim().split('-').map(Number);
    return port >= lo && port <= (hi ?? lo);
  });
}

function addressesMatch(field: string | undefined, ip: string, sets: Map<string, SetPolicy>): boolean {
  if (!field) return true;
  return field.split(',').some((token) => tokenMatches(token.trim(), ip, sets, 0));
}

function tokenMatches(token: string, ip: string, sets: Map<string, SetPolicy>, depth: number): boolean {
  if (/^\d+\.\d+\.\d+\.\d+(\/\d+)?$/.test(token)) return cidrContains(token, ip);
  const set = sets.get(token);
  if (!set) throw new Error(`an ACL names set policy ${token}, which does not exist`);
  // HNS's behaviour for an ACL naming an empty set is not documented; Fencer must never produce one.
  if (set.Values === '') throw new Error(`an ACL names set policy ${token}, which is empty`);
  if (depth > 4) throw new Error(`set policy ${token} nests too deep`);
  const values = set.Values.split(',');
  return set.PolicyType === 'NESTEDIPSET' ? values.some((v) => tokenMatches(v, ip, sets, depth + 1)) : values.some((v) => cidrContains(v, ip));
}

function cidrContains(cidr: string, ip: string): boolean {
  const parsed = parseCidr(cidr.includes('/') ? cidr : `${cidr}/32`);
  const n = parseIPv4(ip);
  return parsed.ok && n !== undefined && ipInInterval(n, parsed.interval);
}

/** What the HNS state of every node allows: Out on the sender's endpoint, In on the receiver's. */
export class HnsEvaluator {
  private readonly nodes: Array<{ sets: Map<string, SetPolicy>; endpoints: Map<string, AclPolicy[]> }>;
  private readonly ingressPeerField: IngressPeerField;

  constructor(nodes: Iterable<HnsNode>, ingressPeerField: IngressPeerField = DEFAULT_INGRESS_PEER_FIELD) {
    this.nodes = [...nodes].map((n) => ({ sets: new Map(n.setPolicies.map((s) => [s.Id, s])), endpoints: n.endpoints }));
    this.ingressPeerField = ingressPeerField;
  }

  /** Throws when an endpoint with ACLs has none matching: the translation must never leave that open. */
  allows(flow: Flow): boolean {
    if (flow.srcIP === flow.dstIP) return true; // a pod talking to itself never leaves its compartment
    const packet: Packet = { src: flow.srcIP, dst: flow.dstIP, protocol: flow.protocol, port: flow.port };
    const out = this.endpointVerdict(flow.srcIP, 'Out', packet);
    const inn = this.endpointVerdict(flow.dstIP, 'In', packet);
    if (out === 'unspecified' || inn === 'unspecified') throw new Error(`no ACL decides ${flow.srcIP} → ${flow.dstIP} ${flow.protocol}/${flow.port} (Out: ${out}, In: ${inn})`);
    return out === 'allow' && inn === 'allow';
  }

  private endpointVerdict(ip: string, direction: AclDirection, packet: Packet): Verdict {
    for (const node of this.nodes) {
      const acls = node.endpoints.get(ip);
      if (acls) return evaluateEndpoint(acls, direction, packet, node.sets, this.ingressPeerField).verdict;
    }
    return 'allow'; // no endpoint with Fencer ACLs: not a pod any policy selects, nothing filters it
  }
}
