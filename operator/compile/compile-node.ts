// Assembles one node's CompiledPolicySet spec: its local pods grouped by the policies that select
// them, those policies' rules, its own sets in full and the cluster-wide sets the rules reference by name.
import { resolveSharedSets } from '../../crds/resolve.ts';
import type { CompiledPolicySetSpec, IPSet, PortMatch, Rule, SharedSetRef, Target } from '../../crds/types.ts';
import { objectKey, podAddress, type Protocol, type V1Pod } from '../../model/cluster.ts';
import type { ClusterIndex } from './cluster-index.ts';
import { setKind, setOrigin, sortEntries, type SetDef, type SetMembership } from './members.ts';
import { ipPortEntry, resolveNamedPort } from './named-ports.ts';
import { contentHash, stableId } from './naming.ts';
import type { NormPolicy, NormPort, NormRule } from './policy.ts';

type Direction = 'ingress' | 'egress';

interface NodeBuild {
  /** Sets whose members depend only on this node's pods (pod groups, ingress named ports). */
  localSets: Map<string, IPSet>;
  /** Sets whose members come from the whole cluster, filled in at assembly. */
  sharedSets: Set<string>;
  membership: SetMembership;
}

/** What a node enforces, minus the members of cluster-wide sets: rebuilt only when local pods or policies change. */
export interface NodeStructure {
  nodeName: string;
  podCIDRs: string[];
  policies: string[];
  targets: Target[];
  diagnostics: CompiledPolicySetSpec['diagnostics'];
  localSets: IPSet[];
  /** Ids of the cluster-wide sets the rules reference, sorted. */
  sharedSets: string[];
  /** Hash of everything above but the sets' members, so assembly hashes only what changed. */
  digest: string;
}

export function compileNode(nodeName: string, index: ClusterIndex, membership: SetMembership): CompiledPolicySetSpec {
  return fullSpec(nodeSpec(buildNodeStructure(nodeName, index, membership), membership), membership);
}

export function buildNodeStructure(nodeName: string, index: ClusterIndex, membership: SetMembership): NodeStructure {
  const build: NodeBuild = { localSets: new Map(), sharedSets: new Set(), membership };
  const groups = groupLocalPods(nodeName, index);
  const targets = [...groups.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([, g]) => compileTarget(g.policies, g.pods, build));
  const policies = [...new Set(targets.flatMap((t) => t.policies))].sort();
  const diagnostics = policies.flatMap((key) => index.policies.get(key)!.diagnostics.map((message) => ({ policy: key, message })));
  const node = index.nodes.get(nodeName);
  const podCIDRs = node?.spec?.podCIDRs?.length ? node.spec.podCIDRs : node?.spec?.podCIDR ? [node.spec.podCIDR] : [];
  const fixed = { podCIDRs: podCIDRs.filter((c) => !c.includes(':')), policies, targets, diagnostics };
  return {
    nodeName,
    ...fixed,
    localSets: [...build.localSets.values()],
    sharedSets: [...build.sharedSets].sort(),
    digest: contentHash(JSON.stringify(fixed)),
  };
}

/**
 * What the node's CompiledPolicySet carries: its own sets in full, the shared ones by name only (their
 * members are in AddressSet objects), so churn of pods elsewhere leaves the spec and its hash alone.
 */
export function nodeSpec(structure: NodeStructure, membership: SetMembership): CompiledPolicySetSpec {
  const sharedSets: SharedSetRef[] = structure.sharedSets.map((id) => {
    const def = membership.definition(id)!;
    return { name: id, kind: setKind(def), origin: setOrigin(def) };
  });
  const ipSets = [...structure.localSets].sort((a, b) => (a.name < b.name ? -1 : 1));
  const { targets, policies } = structure;
  const body = {
    podCIDRs: structure.podCIDRs,
    policies,
    ipSets,
    sharedSets,
    targets,
    diagnostics: structure.diagnostics,
    counts: {
      policies: policies.length,
      rules: targets.reduce((n, t) => n + (t.ingress?.rules.length ?? 0) + (t.egress?.rules.length ?? 0), 0),
      sets: ipSets.length + sharedSets.length,
      sharedSets: sharedSets.length,
      entries: ipSets.reduce((n, s) => n + s.members.length, 0),
      pods: targets.reduce((n, t) => n + t.pods.length, 0),
    },
  };
  // Equal to a hash of the whole body: the structure and each member list enter through their own digests.
  const setDigests = ipSets.map((set) => [set.name, set.kind, set.origin, membersDigest(set.members)]);
  const hash = contentHash(JSON.stringify([structure.digest, setDigests, sharedSets, body.counts]));
  return { nodeName: structure.nodeName, contentHash: hash, ...body };
}

/** The spec with the shared sets' current members filled in: what the node's agent enforces. */
export function fullSpec(spec: CompiledPolicySetSpec, membership: SetMembership): CompiledPolicySetSpec {
  const resolved = resolveSharedSets(spec, (ref) => ({ members: membership.members(ref.name) }));
  return resolved.spec!;
}

// Member lists are shared, immutable arrays (cached per set), so their digest is computed once.
const digests = new WeakMap<string[], string>();

function membersDigest(members: string[]): string {
  let d = digests.get(members);
  if (d === undefined) digests.set(members, (d = contentHash(members.join('\n'))));
  return d;
}

interface PodGroup { policies: NormPolicy[]; pods: Array<{ key: string; ip: string; pod: V1Pod }> }

/** Local addressable pods keyed by the exact list of policies selecting them. */
function groupLocalPods(nodeName: string, index: ClusterIndex): Map<string, PodGroup> {
  const groups = new Map<string, PodGroup>();
  for (const pod of index.podsOnNode(nodeName)) {
    const ip = podAddress(pod);
    if (!ip) continue;
    const selecting = index.policiesSelecting(pod);
    if (selecting.length === 0) continue; // not isolated in either direction: nothing to enforce
    const groupKey = selecting.map((p) => p.key).join('\n');
    let g = groups.get(groupKey);
    if (!g) groups.set(groupKey, (g = { policies: selecting, pods: [] }));
    g.pods.push({ key: objectKey(pod), ip, pod });
  }
  return groups;
}

function compileTarget(policies: NormPolicy[], pods: PodGroup['pods'], build: NodeBuild): Target {
  pods.sort((a, b) => (a.key < b.key ? -1 : 1));
  const keys = policies.map((p) => p.key);
  const podSet = stableId('t', ...keys);
  addSet(build, { name: podSet, kind: 'ip', origin: `local pods selected by ${keys.join(', ')}`, members: sortEntries(pods.map((p) => p.ip)) });
  const target: Target = { podSet, pods: pods.map((p) => p.key), policies: keys };
  for (const direction of ['ingress', 'egress'] as const) {
    const isolating = policies.filter((p) => p[direction] !== undefined);
    if (isolating.length === 0) continue;
    const rules = isolating.flatMap((p) => {
      const compiled = policyRules(p, direction, podSet);
      for (const def of compiled.defs) {
        build.membership.register(def);
        build.sharedSets.add(def.id);
      }
      for (const named of compiled.namedIngress) addSet(build, ingressNamedPortSet(named, pods));
      return compiled.rules;
    });
    target[direction] = { rules };
  }
  return target;
}

/** One policy's rules for one group of local pods: independent of which pods are in the group. */
interface PolicyRules {
  rules: Rule[];
  /** Cluster-wide sets the rules reference (registered again on every use: unused ones are dropped). */
  defs: SetDef[];
  /** Named ports resolved on the group's own pods. */
  namedIngress: NamedIngress[];
}

interface NamedIngress { set: string; name: string; protocol: Protocol }

// Rebuilding a node's structure after a pod change must not recompile every rule of every policy:
// rules are cached per normalized policy object (a new object on every policy change).
const ruleCache = new WeakMap<NormPolicy, Map<string, PolicyRules>>();

function policyRules(policy: NormPolicy, direction: Direction, podSet: string): PolicyRules {
  let byTarget = ruleCache.get(policy);
  if (!byTarget) ruleCache.set(policy, (byTarget = new Map()));
  const cacheKey = `${direction}/${podSet}`;
  let compiled = byTarget.get(cacheKey);
  if (!compiled) {
    compiled = { rules: [], defs: [], namedIngress: [] };
    for (const rule of policy[direction]!) compiled.rules.push(compileRule(policy.key, direction, rule, podSet, compiled));
    byTarget.set(cacheKey, compiled);
  }
  return compiled;
}

function compileRule(policy: string, direction: Direction, rule: NormRule, podSet: string, out: PolicyRules): Rule {
  const peers = rule.peers.map((peer) => {
    out.defs.push({ kind: 'peer', id: peer.id, peer });
    return peer.id;
  });
  return {
    id: stableId('r', podSet, direction, policy, String(rule.index)),
    policy,
    index: rule.index,
    anyPeer: rule.anyPeer,
    peers: [...new Set(peers)].sort(),
    anyPort: rule.anyPort,
    ports: rule.ports.map((port) => compilePort(direction, rule, port, podSet, out)),
  };
}

function compilePort(direction: Direction, rule: NormRule, port: NormPort, podSet: string, out: PolicyRules): PortMatch {
  if (port.name === undefined) {
    const match: PortMatch = { protocol: port.protocol };
    if (port.port !== undefined) match.port = port.port;
    if (port.endPort !== undefined) match.endPort = port.endPort;
    return match;
  }
  if (direction === 'ingress') {
    // Ingress named ports resolve on the local destination pods of this target.
    const set = stableId('n', 'ingress', port.name, port.protocol, podSet);
    out.namedIngress.push({ set, name: port.name, protocol: port.protocol });
    return { protocol: port.protocol, namedPortSet: set };
  }
  // Egress named ports resolve on the remote pods the rule's peers admit.
  const peerIds = rule.anyPeer ? ['*'] : rule.peers.map((p) => p.id).sort();
  const id = stableId('n', 'egress', port.name, port.protocol, ...peerIds);
  const peersText = rule.anyPeer ? 'any pod' : rule.peers.map((p) => p.origin).join(' or ');
  out.defs.push({
    kind: 'egressNamedPort', id, name: port.name, protocol: port.protocol, anyPeer: rule.anyPeer, peers: rule.peers,
    origin: `port "${port.name}"/${port.protocol} of ${peersText}`,
  });
  return { protocol: port.protocol, namedPortSet: id };
}

function ingressNamedPortSet(named: NamedIngress, pods: PodGroup['pods']): IPSet {
  const members = pods.flatMap(({ ip, pod }) => {
    const n = resolveNamedPort(pod, named.name, named.protocol);
    return n === undefined ? [] : [ipPortEntry(ip, named.protocol, n)];
  });
  return { name: named.set, kind: 'ipPort', origin: `port "${named.name}"/${named.protocol} of the local pods selected`, members: sortEntries(members) };
}

function addSet(build: NodeBuild, set: IPSet): void {
  build.localSets.set(set.name, set);
}
