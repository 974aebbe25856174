// How a shared set is cut into AddressSet shards. A member's shard is a stable hash of the member
// modulo the shard count, so adding or removing one pod rewrites exactly one shard. The count is
// kept while every shard stays within bounds (so a set hovering around a threshold never reshards
// back and forth) and chosen afresh, under a new epoch, only when a shard would overflow or the
// shards have become mostly empty. The layout in force is read back from the objects, so a restarted
// operator keeps it and writes nothing.

/** Members per shard aimed at when a layout is chosen. */
export const SHARD_TARGET = 128;
/** No shard holds more: about 4 KiB of members, so one shard write stays a few KiB in etcd. */
export const SHARD_MAX = 256;
/** Below this many members per shard on average, the set is cut again into fewer shards. */
export const SHARD_MIN = 32;

export interface Layout { epoch: number; shards: number }

/** FNV-1a, 32 bits: stable across versions and platforms, cheap for 100k members. */
export function shardOf(member: string, shards: number): number {
  if (shards === 1) return 0;
  let h = 0x811c9dc5;
  for (let i = 0; i < member.length; i++) {
    h ^= member.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % shards;
}

// The same member array is split again whenever a set's consumers change: split once per array.
const splits = new WeakMap<string[], Map<number, string[][]>>();

/** The members of each shard, each list in the order of `members` (sorted in, sorted out). */
export function splitMembers(members: string[], shards: number): string[][] {
  let byCount = splits.get(members);
  if (!byCount) splits.set(members, (byCount = new Map()));
  let parts = byCount.get(shards);
  if (!parts) {
    parts = Array.from({ length: shards }, () => [] as string[]);
    for (const m of members) parts[shardOf(m, shards)].push(m);
    byCount.set(shards, parts);
  }
  return parts;
}

export function fits(members: string[], shards: number): boolean {
  if (shards > 1 && members.length < shards * SHARD_MIN) return false;
  return splitMembers(members, shards).every((p) => p.length <= SHARD_MAX);
}

/** The layout to write: the current one while it fits, else a fresh count under the next epoch. */
export function chooseLayout(members: string[], current: Layout | undefined): Layout {
  if (current && fits(members, current.shards)) return current;
  const shards = Math.max(1, Math.ceil(members.length / SHARD_TARGET));
  if (current && shards === current.shards) return current;
  return { epoch: current ? current.epoch + 1 : 0, shards };
}
