// Puts a node's spec and the AddressSet shards it names back together into the one spec a dataplane
// enforces: every set carried in full. Used by the agent, `fencer show/explain/verify` and the tests.
import type { AddressSetSpec } from './address-set.ts';
import type { CompiledPolicySetSpec, IPSet, SharedSetRef } from './types.ts';

/** The members of a shared set, or why they cannot be had yet. */
export type SetLookup = (ref: SharedSetRef) => { members: string[] } | { missing: string };

export type Resolution = { spec: CompiledPolicySetSpec; missing?: undefined } | { missing: string[]; spec?: undefined };

/**
 * The spec with its shared sets filled in, or every reason it is not whole yet. A spec is enforced
 * only whole: rules never go into the kernel ahead of a set they reference.
 */
export function resolveSharedSets(spec: CompiledPolicySetSpec, lookup: SetLookup): Resolution {
  const refs = spec.sharedSets ?? [];
  if (refs.length === 0) return { spec: withoutRefs(spec) };
  const missing: string[] = [];
  const shared: IPSet[] = [];
  for (const ref of refs) {
    const found = lookup(ref);
    if ('missing' in found) missing.push(`${ref.name}: ${found.missing}`);
    else shared.push({ name: ref.name, kind: ref.kind, origin: ref.origin, members: found.members });
  }
  if (missing.length) return { missing };
  const ipSets = [...spec.ipSets, ...shared].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const entries = ipSets.reduce((n, s) => n + s.members.length, 0);
  const { sharedSets: _, ...rest } = spec;
  return { spec: { ...rest, ipSets, counts: { ...spec.counts, entries } } };
}

function withoutRefs(spec: CompiledPolicySetSpec): CompiledPolicySetSpec {
  if (spec.sharedSets === undefined) return spec;
  const { sharedSets: _, ...rest } = spec;
  return rest;
}

/**
 * The members of one set from the shards at hand: the newest epoch whose shards are all there,
 * each once, agreeing on the shard count and on the set's kind. Shards of an older epoch stay
 * usable until a newer layout is complete (the operator writes the new one before deleting the old).
 */
export function membersFromShards(ref: SharedSetRef, shards: readonly AddressSetSpec[]): { members: string[]; epoch: number } | { missing: string } {
  const byEpoch = new Map<number, AddressSetSpec[]>();
  for (const s of shards) {
    if (s.set !== ref.name) continue;
    let list = byEpoch.get(s.epoch);
    if (!list) byEpoch.set(s.epoch, (list = []));
    list.push(s);
  }
  if (byEpoch.size === 0) return { missing: 'no shard received yet' };
  let reason = '';
  for (const epoch of [...byEpoch.keys()].sort((a, b) => b - a)) {
    const layout = byEpoch.get(epoch)!;
    const problem = layoutProblem(ref, layout);
    if (!problem) {
      const ordered = [...layout].sort((a, b) => a.shard - b.shard);
      return { members: ordered.length === 1 ? ordered[0].members : ordered.flatMap((s) => s.members), epoch };
    }
    reason ||= `epoch ${epoch}: ${problem}`;
  }
  return { missing: reason };
}

function layoutProblem(ref: SharedSetRef, layout: AddressSetSpec[]): string | undefined {
  const count = layout[0].shards;
  if (layout.some((s) => s.shards !== count)) return 'its shards disagree on the shard count';
  if (layout.some((s) => s.kind !== ref.kind)) return `a shard is of kind ${layout.find((s) => s.kind !== ref.kind)!.kind}, the node's spec says ${ref.kind}`;
  const seen = new Set(layout.map((s) => s.shard));
  if (seen.size !== layout.length) return 'a shard index appears twice';
  const absent = [];
  for (let i = 0; i < count && absent.length < 5; i++) if (!seen.has(i)) absent.push(i);
  if (absent.length) return `waiting for shard${absent.length > 1 ? 's' : ''} ${absent.join(', ')} of ${count}`;
  if (layout.some((s) => s.shard >= count)) return 'a shard index is out of range';
  return undefined;
}
