// The contract between operator and agent: the spec and status of a CompiledPolicySet.
// Dataplane-neutral: an iptables/ipset translator and an HNS ACL translator are written from it alone.

export const CPS_GROUP = 'fencer.dev';
export const CPS_VERSION = 'v1alpha1';
export const CPS_PLURAL = 'compiledpolicysets';
export const CPS_KIND = 'CompiledPolicySet';
export const CPS_API_VERSION = `${CPS_GROUP}/${CPS_VERSION}`;

export type Protocol = 'TCP' | 'UDP' | 'SCTP';

/**
 * A named set of addresses. Its name depends only on what it stands for (a selector, an ipBlock,
 * a group of local pods), never on its members, so pod churn changes members and not rules.
 * - ip: single IPv4 addresses (pods)
 * - net: IPv4 CIDRs with `except` already subtracted (no /0: the compiler splits it into two /1s)
 * - ipPort: "IP,protocol:port" pairs for named ports, matched on the destination
 */
export type IPSetKind = 'ip' | 'net' | 'ipPort';

export interface IPSet {
  name: string;
  kind: IPSetKind;
  /** Readable description, e.g. "pods with app=db in namespaces with team=a". */
  origin: string;
  members: string[];
  /**
   * When a node's spec would exceed the object size budget, the operator moves large member lists
   * here: base64 of the gzip of the members joined by newlines (`members` is then empty).
   */
  membersGzip?: string;
}

export interface PortMatch {
  protocol: Protocol;
  /** Absent together with namedPortSet: every port of the protocol. */
  port?: number;
  /** Inclusive upper bound of a range starting at `port`. */
  endPort?: number;
  /** An ipPort set: (destination IP, protocol:port) pairs a named port resolved to. */
  namedPortSet?: string;
}

export interface Rule {
  /** Stable id, also written into kernel rule comments. */
  id: string;
  /** namespace/name of the NetworkPolicy and the rule's index in its ingress or egress list. */
  policy: string;
  index: number;
  /** When true the rule matches any remote address; otherwise one of `peers` must match. */
  anyPeer: boolean;
  /** Sets of remote addresses (sources for ingress, destinations for egress); OR. */
  peers: string[];
  /** When true the rule matches any protocol and port; otherwise one of `ports` must match. */
  anyPort: boolean;
  ports: PortMatch[];
}

/** Local pods are isolated in a direction when a policy selects them for it: default deny + rules. */
export interface DirectionRules {
  rules: Rule[];
}

/** Local pods selected by exactly the same policies share one target and its rules. */
export interface Target {
  /** An `ip` set holding the IPs of the target's local pods. */
  podSet: string;
  /** namespace/name of the pods (readable; the addresses are in podSet). */
  pods: string[];
  /** namespace/name of the policies selecting these pods. */
  policies: string[];
  /** Present when the pods are isolated for ingress. */
  ingress?: DirectionRules;
  /** Present when the pods are isolated for egress. */
  egress?: DirectionRules;
}

export interface PolicyDiagnostic {
  policy: string;
  /** Precise reason; the affected pods stay isolated (fail closed). */
  message: string;
}

export interface CompiledCounts {
  policies: number;
  rules: number;
  /** Every set the node uses: those carried here and those named in sharedSets. */
  sets: number;
  /** How many of them are shared (members in AddressSet objects). Absent in specs from before shared sets. */
  sharedSets?: number;
  /** Entries carried by this object; a shared set's entries are counted by its AddressSet shards. */
  entries: number;
  pods: number;
}

/**
 * A set whose members come from the whole cluster, named by a node's spec and held in AddressSet
 * shards (crds/address-set.ts). Its name stands for its definition, never for its members, so
 * member changes write the shards alone and no node object.
 */
export interface SharedSetRef {
  name: string;
  kind: IPSetKind;
  origin: string;
  /**
   * The newest resourceVersion among the set's shards when this object was written (stamped by the
   * operator at write time, outside the content hash): an agent uses the set only once it holds its
   * shards at least that new, so a spec never goes into the kernel with members older than it was
   * written against, whichever watch delivers first.
   */
  revision?: string;
}

export interface CompiledPolicySetSpec {
  nodeName: string;
  /** sha256 over the canonical JSON of every other spec field. */
  contentHash: string;
  podCIDRs: string[];
  /** namespace/name of every policy that selects a pod on this node. */
  policies: string[];
  /** Sets carried in full: the node's own (local pod groups, ingress named ports). */
  ipSets: IPSet[];
  /** Shared sets the rules reference; absent (or empty) when everything is carried in ipSets. */
  sharedSets?: SharedSetRef[];
  targets: Target[];
  diagnostics: PolicyDiagnostic[];
  counts: CompiledCounts;
}

export interface Condition {
  type: 'Applied' | 'Degraded' | 'InSync';
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

export interface CompiledPolicySetStatus {
  observedGeneration?: number;
  appliedHash?: string;
  appliedAt?: string;
  agent?: string;
  counts?: { iptablesRules?: number; ipsets?: number; ipsetEntries?: number };
  conditions?: Condition[];
}

export interface CompiledPolicySet {
  apiVersion: typeof CPS_API_VERSION;
  kind: typeof CPS_KIND;
  metadata: {
    name: string;
    generation?: number;
    resourceVersion?: string;
    labels?: Record<string, string>;
    ownerReferences?: Array<{ apiVersion: string; kind: string; name: string; uid: string }>;
    [key: string]: unknown;
  };
  spec: CompiledPolicySetSpec;
  status?: CompiledPolicySetStatus;
}
