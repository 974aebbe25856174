// The HNS objects Fencer programs on a Windows node, in the JSON shapes HNS takes:
// - ACL endpoint policies: hcsshim's hcn.AclPolicySetting plus the `Id` Azure NPM adds
//   (npm/pkg/dataplane/policies/policy_windows.go, NPMACLPolSettings);
// - network set policies: hcsshim's hcn.SetPolicySetting (Id, Name, PolicyType IPSET/NESTEDIPSET, Values).
// Fencer owns exactly the objects whose Id starts with PREFIX; everything else on an endpoint (the CNI's
// own ACLs, NAT and route policies) is read and written back untouched.

export const PREFIX = 'fencer-';

export type AclAction = 'Allow' | 'Block';
export type AclDirection = 'In' | 'Out';

/** One ACL endpoint policy. An absent or empty address, port or protocol field means ANY in HNS. */
export interface AclPolicy {
  Id: string;
  Action: AclAction;
  Direction: AclDirection;
  /** IP protocol numbers, comma-separated ("6", "17", "132"); absent: every protocol. */
  Protocols?: string;
  /** Comma-separated IPs, CIDRs or set policy Ids. */
  LocalAddresses?: string;
  RemoteAddresses?: string;
  /** Comma-separated ports or "first-last" ranges. */
  LocalPorts?: string;
  RemotePorts?: string;
  RuleType: 'Switch';
  /** Lower numbers are evaluated first. */
  Priority: number;
}

export type SetPolicyType = 'IPSET' | 'NESTEDIPSET';

/** A network set policy: Values are comma-separated IPs/CIDRs (IPSET) or set Ids (NESTEDIPSET). */
export interface SetPolicy {
  Id: string;
  Name: string;
  PolicyType: SetPolicyType;
  Values: string;
}

/**
 * Priorities Fencer uses (lower = first). Allow and Block never share a priority, so HNS's tie-break
 * between them never matters.
 * - host: Allow In from the node's own addresses (kubelet probes), like Azure NPM's readiness ACL (201).
 * - allow: every Allow of a NetworkPolicy rule; they are a union, so their order is irrelevant.
 * - deny: the explicit Block-all closing an isolated direction.
 * - open: the explicit Allow-all of a direction no policy isolates; placed after the CNI's own rules
 *   (e.g. Azure CNI's Block of 168.63.129.16 at 65000) so it never overrides them.
 */
export const PRIORITY = { host: 200, allow: 1000, deny: 4000, open: 65400 } as const;

export const PROTOCOL_NUMBERS = { TCP: '6', UDP: '17', SCTP: '132' } as const;

/**
 * Which address field of an In ACL holds the remote peer (the packet's source) when it names set
 * policies. Azure NPM puts source sets in LocalAddresses for In ACLs (policy_windows.go, PR #1197: "HNS has
 * confusing Local and Remote address definitions"); hcsshim's naming, Calico for Windows and NPM's own
 * readiness ACL (a literal node IP) use RemoteAddresses. Out ACLs use RemoteAddresses in every source.
 * A Windows node must confirm which one its HNS honours (docs/windows.md).
 */
export type IngressPeerField = 'LocalAddresses' | 'RemoteAddresses';

export const DEFAULT_INGRESS_PEER_FIELD: IngressPeerField = 'LocalAddresses';

export function isFencerAcl(acl: { Id?: string }): boolean {
  return typeof acl.Id === 'string' && acl.Id.startsWith(PREFIX);
}

/** The field of an ACL that names the remote peer, for a direction. */
export function peerField(direction: AclDirection, ingressPeerField: IngressPeerField): 'LocalAddresses' | 'RemoteAddresses' {
  return direction === 'In' ? ingressPeerField : 'RemoteAddresses';
}

/** The field of an ACL that holds the destination port (the local port for In, the remote one for Out). */
export function destinationPortField(direction: AclDirection): 'LocalPorts' | 'RemotePorts' {
  return direction === 'In' ? 'LocalPorts' : 'RemotePorts';
}

/** A stable order for a list of ACLs, without duplicates: what the diff compares and the golden files show. */
export function sortAcls(acls: AclPolicy[]): AclPolicy[] {
  const keyed = acls.map((a) => ({ a, k: aclKey(a) }));
  keyed.sort((x, y) => (x.k < y.k ? -1 : x.k > y.k ? 1 : 0));
  const out: AclPolicy[] = [];
  let last: string | undefined;
  for (const { a, k } of keyed) {
    if (k !== last) out.push(a);
    last = k;
  }
  return out;
}

function aclKey(a: AclPolicy): string {
  return `${a.Direction}\u0000${String(a.Priority).padStart(5, '0')}\u0000${a.Id}\u0000${canonicalAcl(a)}`;
}

/** The ACL as JSON with a fixed field order and no empty fields (HNS omits them: `json:",omitempty"`). */
export function canonicalAcl(a: AclPolicy): string {
  const fields = ['Id', 'Action', 'Direction', 'Protocols', 'LocalAddresses', 'RemoteAddresses', 'LocalPorts', 'RemotePorts', 'RuleType', 'Priority'] as const;
  const out: Record<string, unknown> = {};
  for (const f of fields) if (a[f] !== undefined && a[f] !== '') out[f] = a[f];
  return JSON.stringify(out);
}

export function sameAcls(a: AclPolicy[], b: AclPolicy[]): boolean {
  const x = sortAcls(a).map(canonicalAcl);
  const y = sortAcls(b).map(canonicalAcl);
  return x.length === y.length && x.every((v, i) => v === y[i]);
}
