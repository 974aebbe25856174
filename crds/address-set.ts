// The AddressSet object: one shard of a shared address set (crds/addressset.yaml).
import { CPS_GROUP, CPS_VERSION, type IPSetKind } from './types.ts';

export const ASET_PLURAL = 'addresssets';
export const ASET_KIND = 'AddressSet';
export const ASET_API_VERSION = `${CPS_GROUP}/${CPS_VERSION}`;

export interface AddressSetSpec {
  /** The set this shard belongs to (its kernel name). */
  set: string;
  kind: IPSetKind;
  origin: string;
  /** Layout generation: a new shard count is written under a new epoch, so old and new layouts never mix. */
  epoch: number;
  /** Index of this shard, 0 ≤ shard < shards; a member lives in shard shardOf(member, shards). */
  shard: number;
  shards: number;
  /** members.length (for `kubectl get aset`). */
  size: number;
  /** How many nodes use the set (for `kubectl get aset`). */
  nodes: number;
  /** Sorted in numeric address order, like every member list. */
  members: string[];
}

export interface AddressSet {
  apiVersion: typeof ASET_API_VERSION;
  kind: typeof ASET_KIND;
  metadata: {
    name: string;
    uid?: string;
    resourceVersion?: string;
    generation?: number;
    labels?: Record<string, string>;
    [key: string]: unknown;
  };
  spec: AddressSetSpec;
}

/** A shard's object name: the set, the layout epoch and the index (unique, stable, DNS-safe). */
export function shardName(set: string, epoch: number, shard: number): string {
  return `${set}-${epoch}-${shard}`;
}

/** The set a shard object belongs to, by its (immutable) name; an unrecognisable name is a group of its own. */
export function setOfShard(name: string): string {
  return /^[a-z]-[0-9a-f]{16}(?=-)/.exec(name)?.[0] ?? name;
}

/** A resourceVersion as the etcd revision it is (compared as numbers; undefined when it is not one). */
export function revision(object: { metadata: { resourceVersion?: string } }): bigint | undefined {
  const rv = object.metadata.resourceVersion;
  return rv && /^\d+$/.test(rv) ? BigInt(rv) : undefined;
}

/** The newest revision among these objects. */
export function newestRevision(objects: Iterable<{ metadata: { resourceVersion?: string } }>): bigint | undefined {
  let newest: bigint | undefined;
  for (const o of objects) {
    const r = revision(o);
    if (r !== undefined && (newest === undefined || r > newest)) newest = r;
  }
  return newest;
}
