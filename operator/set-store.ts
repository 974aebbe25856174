// What the operator believes the AddressSet shards look like on the apiserver, grouped by set: fed by
// the AddressSet watch and by the responses to its own writes. Shards are grouped by their name
// (immutable), never by what their spec claims, so a hand-edited `spec.set` is still repaired.
import { revision, setOfShard, type AddressSet } from '../crds/address-set.ts';
import { type Layout } from './set-layout.ts';

export { setOfShard };

export class SetStore {
  private readonly bySet = new Map<string, Map<string, AddressSet>>();

  shards(set: string): AddressSet[] {
    return [...(this.bySet.get(set)?.values() ?? [])];
  }

  get(name: string): AddressSet | undefined {
    return this.bySet.get(setOfShard(name))?.get(name);
  }

  setIds(): string[] {
    return [...this.bySet.keys()];
  }

  /** Records an object; false when exactly this version was known already. */
  upsert(object: AddressSet): boolean {
    const set = setOfShard(object.metadata.name);
    let group = this.bySet.get(set);
    const known = group?.get(object.metadata.name);
    if (known && known.metadata.uid === object.metadata.uid && !newerVersion(object, known)) return false;
    if (!group) this.bySet.set(set, (group = new Map()));
    const { managedFields: _managed, ...metadata } = object.metadata;
    group.set(object.metadata.name, { ...object, metadata });
    return true;
  }

  /** Forgets an object; a deletion of an earlier incarnation (another uid) is ignored. */
  delete(object: { metadata: { name: string; uid?: unknown } }): boolean {
    const set = setOfShard(object.metadata.name);
    const group = this.bySet.get(set);
    const known = group?.get(object.metadata.name);
    if (!group || !known) return false;
    if (object.metadata.uid && known.metadata.uid && object.metadata.uid !== known.metadata.uid) return false;
    group.delete(object.metadata.name);
    if (group.size === 0) this.bySet.delete(set);
    return true;
  }
}

/** A watch event older than our own write's response is no news (resourceVersions are etcd revisions). */
function newerVersion(candidate: AddressSet, known: AddressSet): boolean {
  const a = revision(candidate);
  const b = revision(known);
  return a !== undefined && b !== undefined ? a > b : candidate.metadata.resourceVersion !== known.metadata.resourceVersion;
}

/** The layout the shards on the apiserver follow: their newest epoch (a missing shard is recreated in it). */
export function layoutInForce(shards: readonly AddressSet[]): Layout | undefined {
  let best: Layout | undefined;
  for (const s of shards) {
    const { epoch, shards: count } = s.spec ?? {};
    if (!Number.isInteger(epoch) || !Number.isInteger(count) || count < 1) continue;
    if (!best || epoch > best.epoch) best = { epoch, shards: count };
  }
  return best;
}
