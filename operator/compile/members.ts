// Set definitions whose members come from the whole cluster (peer selectors, ipBlocks, egress named
// ports), with a membership cache that one pod or namespace change invalidates precisely.
import type { V1Pod } from '../../model/cluster.ts';
import { podAddress, type Protocol } from '../../model/cluster.ts';
import { namespacesOf, type ClusterIndex } from './cluster-index.ts';
import { ipInInterval, parseIPv4 } from '../../runtime/ipv4.ts';
import { ipPortEntry, resolveNamedPort } from './named-ports.ts';
import type { PeerDef, PodPeer } from './policy.ts';
import { matchesSelector } from './selectors.ts';
import type { IPSetKind } from '../../crds/types.ts';

export type SetDef =
  | { kind: 'peer'; id: string; peer: PeerDef }
  | { kind: 'egressNamedPort'; id: string; name: string; protocol: Protocol; anyPeer: boolean; peers: PeerDef[]; origin: string };

export function setKind(def: SetDef): IPSetKind {
  if (def.kind === 'egressNamedPort') return 'ipPort';
  return def.peer.kind === 'cidrs' ? 'net' : 'ip';
}

export function setOrigin(def: SetDef): string {
  return def.kind === 'peer' ? def.peer.origin : def.origin;
}

export class SetMembership {
  private readonly defs = new Map<string, SetDef>();
  private readonly cache = new Map<string, string[]>();

  private readonly index: ClusterIndex;

  constructor(index: ClusterIndex) {
    this.index = index;
  }

  register(def: SetDef): void {
    if (!this.defs.has(def.id)) this.defs.set(def.id, def);
  }

  definition(id: string): SetDef | undefined {
    return this.defs.get(id);
  }

  members(id: string): string[] {
    let m = this.cache.get(id);
    if (!m) {
      m = computeMembers(this.defs.get(id)!, this.index);
      this.cache.set(id, m);
    }
    return m;
  }

  /** Ids of the sets whose members differ between the old and the new version of a pod. */
  invalidatePod(before: V1Pod | undefined, after: V1Pod | undefined): string[] {
    const changed: string[] = [];
    for (const def of this.defs.values()) {
      if (contribution(def, before, this.index) !== contribution(def, after, this.index)) changed.push(def.id);
    }
    for (const id of changed) this.cache.delete(id);
    return changed;
  }

  /** Ids of the sets whose namespace selectors judge the old and new labels differently. */
  invalidateNamespace(name: string, before: Record<string, string>, after: Record<string, string>): string[] {
    const flips = (p: PeerDef) => p.kind === 'pods' && !!p.namespaceSelector &&
      matchesSelector(p.namespaceSelector, before) !== matchesSelector(p.namespaceSelector, after);
    const changed: string[] = [];
    for (const def of this.defs.values()) {
      const peers = def.kind === 'peer' ? [def.peer] : def.peers;
      if (peers.some(flips)) changed.push(def.id);
    }
    for (const id of changed) this.cache.delete(id);
    return changed;
  }

  /** Drops definitions no node references any more. */
  retainOnly(inUse: Set<string>): void {
    for (const id of [...this.defs.keys()]) {
      if (!inUse.has(id)) {
        this.defs.delete(id);
        this.cache.delete(id);
      }
    }
  }
}

function podPeerMatches(peer: PodPeer, pod: V1Pod, index: ClusterIndex): boolean {
  const ns = pod.metadata?.namespace ?? 'default';
  if (peer.namespace !== undefined && peer.namespace !== ns) return false;
  if (peer.namespaceSelector && !matchesSelector(peer.namespaceSelector, index.namespaceLabels(ns))) return false;
  return matchesSelector(peer.podSelector, pod.metadata?.labels);
}

function peerMatchesPod(peer: PeerDef, pod: V1Pod, ip: string, index: ClusterIndex): boolean {
  if (peer.kind === 'pods') return podPeerMatches(peer, pod, index);
  const n = parseIPv4(ip)!;
  return peer.intervals.some((i) => ipInInterval(n, i));
}

/** What one pod adds to a set: its entry, or undefined. */
function contribution(def: SetDef, pod: V1Pod | undefined, index: ClusterIndex): string | undefined {
  const ip = pod && podAddress(pod);
  if (!pod || !ip) return undefined;
  if (def.kind === 'peer') {
    return def.peer.kind === 'pods' && podPeerMatches(def.peer, pod, index) ? ip : undefined;
  }
  if (!def.anyPeer && !def.peers.some((p) => peerMatchesPod(p, pod, ip, index))) return undefined;
  const port = resolveNamedPort(pod, def.name, def.protocol);
  return port === undefined ? undefined : ipPortEntry(ip, def.protocol, port);
}

function computeMembers(def: SetDef, index: ClusterIndex): string[] {
  if (def.kind === 'peer' && def.peer.kind === 'cidrs') return def.peer.cidrs;
  const candidates = def.kind === 'peer' && def.peer.kind === 'pods' ? candidatePods(def.peer, index) : [...index.pods.values()];
  const out = new Set<string>();
  for (const pod of candidates) {
    const entry = contribution(def, pod, index);
    if (entry !== undefined) out.add(entry);
  }
  return sortEntries([...out]);
}

function candidatePods(peer: PodPeer, index: ClusterIndex): V1Pod[] {
  if (peer.namespace !== undefined) return index.podsInNamespace(peer.namespace);
  const namespaces = namespacesOf(index).filter((ns) => matchesSelector(peer.namespaceSelector!, index.namespaceLabels(ns)));
  return namespaces.flatMap((ns) => index.podsInNamespace(ns));
}

/** Numeric address order, so outputs read naturally and never depend on input order. */
export function sortEntries(entries: string[]): string[] {
  const keyOf = (e: string) => {
    let cut = e.indexOf('/');
    if (cut < 0) cut = e.indexOf(',');
    if (cut < 0) cut = e.length;
    return { n: parseIPv4(e.slice(0, cut)) ?? 0, rest: e.slice(cut) };
  };
  const keyed = entries.map((e) => ({ e, k: keyOf(e) }));
  keyed.sort((a, b) => a.k.n - b.k.n || (a.k.rest < b.k.rest ? -1 : a.k.rest > b.k.rest ? 1 : 0) || (a.e < b.e ? -1 : a.e > b.e ? 1 : 0));
  return keyed.map((x) => x.e);
}
