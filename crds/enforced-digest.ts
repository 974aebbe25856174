// One string for everything a node enforces: the spec's content hash and the members of every set,
// shared ones included. A change that only moves members of a shared set rewrites AddressSet shards
// and leaves the node's content hash as it is, so whoever must know that the members are in the
// kernel (the sandbox before it probes) compares this instead. Sets and members are sorted here:
// members put back together from shards come in shard order, not sorted.
import { createHash } from 'node:crypto';
import type { CompiledPolicySetSpec } from './types.ts';

/** The digest of a whole spec (shared sets filled in, as `resolveSharedSets` gives it). */
export function enforcedDigest(spec: CompiledPolicySetSpec): string {
  const hash = createHash('sha256').update(spec.contentHash);
  const sets = [...spec.ipSets].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const set of sets) {
    hash.update(`\n${set.name}\u0000${set.kind}`);
    for (const member of [...set.members].sort()) hash.update(`\u0000${member}`);
  }
  return `sha256:${hash.digest('hex')}`;
}
