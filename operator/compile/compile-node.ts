// Assembles one node's CompiledPolicySet spec: its local pods grouped by the policies that select
// them, those policies' rules, and exactly the sets the rules reference.
import type { CompiledPolicySetSpec, IPSet, PortMatch, Rule, Target } from '../../crds/types.ts';
import { objectKey, podAddress, type V1Pod } from '../../model/cluster.ts';
import type { ClusterIndex } from './cluster-index.ts';
import { setKind, setOrigin, sortEntries, type SetMembership } from './members.ts';
import { ipPortEntry, resolveNamedPort } from './named-ports.ts';
import { contentHash, stableId } from './naming.ts';
import type { NormPolicy, NormPort, NormRule } from './policy.ts';
import { matchesSelector } from './selectors.ts';

type Direction = 'ingress' | 'egress';

interface NodeBuild {
  sets: Map<string, IPSet>;
  membership: SetMembership;
}

export function compileNode(nodeName: string, index: ClusterIndex, membership: SetMembership): CompiledPolicySetSpec {
  const build: NodeBuild = { sets: new Map(), membership };
  const groups = groupLocalPods(nodeName, index);
  const targets = [...groups.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([, g]) => compileTarget(g.policies, g.pods, build));
  const policies = [...new Set(targets.flatMap((t) => t.policies))].sort();
  const ipSets = [...build.sets.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
  const diagnostics = policies.flatMap((key) => index.policies.get(key)!.diagnostics.map((message) => ({ policy: key, message })));
  const node = index.nodes.get(nodeName);
  const podCIDRs = node?.spec?.podCIDRs?.length ? node.spec.podCIDRs : node?.spec?.podCIDR ? [node.spec.podCIDR] : [];
  const body = {
    nodeName,
    podCIDRs: podCIDRs.filter((c) => !c.includes(':')),
    policies,
    ipSets,
    targets,
    diagnostics,
    counts: {
      policies: policies.length,
      rules: targets.reduce((n, t) => n + (t.ingress?.rules.length ?? 0) + (t.egress?.rules.length ?? 0), 0),
      sets: ipSets.length,
      entries: ipSets.reduce((n, s) => n + s.members.length, 0),
      pods: targets.reduce((n, t) => n + t.pods.length, 0),
    },
  };
  const { nodeName: _n, ...hashed } = body;
  return { nodeName, contentHash: contentHash(JSON.stringify(hashed)), ...hashed };
}

interface PodGroup { policies: NormPolicy[]; pods: Array<{ key: string; ip: string; pod: V1Pod }> }

/** Local addressable pods keyed by the exact list of policies selecting them. */
function groupLocalPods(nodeName: string, index: ClusterIndex): Map<string, PodGroup> {
  const groups = new Map<string, PodGroup>();
  for (const pod of index.podsOnNode(nodeName)) {
    const ip = podAddress(pod);
    if (!ip) continue;
    const namespace = pod.metadata?.namespace ?? 'default';
    const selecting = index.policiesInNamespace(namespace)
      .filter((p) => !p.podSelector || matchesSelector(p.podSelector, pod.metadata?.labels))
      .sort((a, b) => (a.key < b.key ? -1 : 1));
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
    const rules = isolating.flatMap((p) => p[direction]!.map((r) => compileRule(p.key, direction, r, { podSet, pods }, build)));
    target[direction] = { rules };
  }
  return target;
}

interface RuleTarget { podSet: string; pods: PodGroup['pods'] }

function compileRule(policy: string, direction: Direction, rule: NormRule, target: RuleTarget, build: NodeBuild): Rule {
  const peers = rule.peers.map((peer) => {
    build.membership.register({ kind: 'peer', id: peer.id, peer });
    return addRegisteredSet(build, peer.id);
  });
  return {
    id: stableId('r', target.podSet, direction, policy, String(rule.index)),
    policy,
    index: rule.index,
    anyPeer: rule.anyPeer,
    peers: [...new Set(peers)].sort(),
    anyPort: rule.anyPort,
    ports: rule.ports.map((port) => compilePort(direction, rule, port, target, build)),
  };
}

function compilePort(direction: Direction, rule: NormRule, port: NormPort, target: RuleTarget, build: NodeBuild): PortMatch {
  if (port.name === undefined) {
    const out: PortMatch = { protocol: port.protocol };
    if (port.port !== undefined) out.port = port.port;
    if (port.endPort !== undefined) out.endPort = port.endPort;
    return out;
  }
  if (direction === 'ingress') {
    // Ingress named ports resolve on the local destination pods of this target.
    const name = stableId('n', 'ingress', port.name, port.protocol, target.podSet);
    const members = target.pods.flatMap(({ ip, pod }) => {
      const n = resolveNamedPort(pod, port.name!, port.protocol);
      return n === undefined ? [] : [ipPortEntry(ip, port.protocol, n)];
    });
    addSet(build, { name, kind: 'ipPort', origin: `port "${port.name}"/${port.protocol} of the local pods selected`, members: sortEntries(members) });
    return { protocol: port.protocol, namedPortSet: name };
  }
  // Egress named ports resolve on the remote pods the rule's peers admit.
  const peerIds = rule.anyPeer ? ['*'] : rule.peers.map((p) => p.id).sort();
  const id = stableId('n', 'egress', port.name, port.protocol, ...peerIds);
  const peersText = rule.anyPeer ? 'any pod' : rule.peers.map((p) => p.origin).join(' or ');
  build.membership.register({
    kind: 'egressNamedPort', id, name: port.name, protocol: port.protocol, anyPeer: rule.anyPeer, peers: rule.peers,
    origin: `port "${port.name}"/${port.protocol} of ${peersText}`,
  });
  addRegisteredSet(build, id);
  return { protocol: port.protocol, namedPortSet: id };
}

function addRegisteredSet(build: NodeBuild, id: string): string {
  if (!build.sets.has(id)) {
    const def = build.membership.definition(id)!;
    addSet(build, { name: id, kind: setKind(def), origin: setOrigin(def), members: build.membership.members(id) });
  }
  return id;
}

function addSet(build: NodeBuild, set: IPSet): void {
  build.sets.set(set.name, set);
}
