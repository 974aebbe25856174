// Decides what one shared set's AddressSet shards need, from what should be (the compiled set, and
// the nodes that use it) and what is (the shards last seen). Pure; set-writer.ts carries it out.
import { ASET_API_VERSION, ASET_KIND, shardName, type AddressSet } from '../crds/address-set.ts';
import { consumerLabels, isConsumerLabel } from '../crds/consumers.ts';
import { sameList } from '../runtime/same-list.ts';
import type { SharedSet } from './compile/compiler.ts';
import { MANAGED_BY_LABEL } from './cps-object.ts';
import { chooseLayout, splitMembers } from './set-layout.ts';
import { layoutInForce } from './set-store.ts';

export type ShardAction =
  | { kind: 'create'; object: AddressSet }
  | { kind: 'update'; object: AddressSet }
  | { kind: 'delete'; name: string; uid?: string };

/** Writes go first; deletions only once every write succeeded, so an agent never loses a layout before the next is whole. */
export interface SetPlan { writes: ShardAction[]; deletes: ShardAction[] }

/**
 * - nobody uses the set (neither the compile nor any CompiledPolicySet on the apiserver): delete its shards;
 * - a CompiledPolicySet still names it but the compile no longer does: leave it until that object is rewritten;
 * - otherwise every shard of the layout, labelled for every node that uses it (compiled or still
 *   named by its written CompiledPolicySet), and nothing else.
 */
export function planSet(set: string, desired: SharedSet | undefined, stillNamedBy: readonly string[], observed: readonly AddressSet[]): SetPlan {
  const consumers = [...new Set([...(desired?.nodes ?? []), ...stillNamedBy])].sort();
  if (consumers.length === 0) return { writes: [], deletes: observed.map(deletion) };
  if (!desired) return { writes: [], deletes: [] };
  const wanted = desiredShards(desired, consumers, observed);
  const byName = new Map(observed.map((o) => [o.metadata.name, o]));
  const writes: ShardAction[] = [];
  for (const object of wanted) {
    const seen = byName.get(object.metadata.name);
    if (!seen) writes.push({ kind: 'create', object });
    else if (!sameShard(seen, object)) writes.push({ kind: 'update', object: replacement(object, seen) });
  }
  const keep = new Set(wanted.map((o) => o.metadata.name));
  return { writes, deletes: observed.filter((o) => !keep.has(o.metadata.name)).map(deletion) };
}

export function desiredShards(desired: SharedSet, consumers: readonly string[], observed: readonly AddressSet[]): AddressSet[] {
  const layout = chooseLayout(desired.members, layoutInForce(observed));
  const parts = splitMembers(desired.members, layout.shards);
  const labels = { [MANAGED_BY_LABEL]: 'fencer', ...consumerLabels(consumers) };
  return parts.map((members, shard) => ({
    apiVersion: ASET_API_VERSION,
    kind: ASET_KIND,
    metadata: { name: shardName(desired.name, layout.epoch, shard), labels },
    spec: {
      set: desired.name, kind: desired.kind, origin: desired.origin, epoch: layout.epoch, shard, shards: layout.shards,
      size: members.length, nodes: consumers.length, members,
    },
  }));
}

/** Same spec, our label, and exactly our consumer labels (others' labels are theirs). */
export function sameShard(observed: AddressSet, desired: AddressSet): boolean {
  const a = observed.spec;
  const b = desired.spec;
  if (!a || a.set !== b.set || a.kind !== b.kind || a.origin !== b.origin || a.epoch !== b.epoch || a.shard !== b.shard
    || a.shards !== b.shards || a.size !== b.size || a.nodes !== b.nodes || !Array.isArray(a.members) || !sameList(a.members, b.members)) return false;
  if (Object.keys(a).length !== Object.keys(b).length) return false;
  const labels = observed.metadata.labels ?? {};
  if (labels[MANAGED_BY_LABEL] !== 'fencer') return false;
  const ours = Object.keys(labels).filter(isConsumerLabel).sort();
  const wanted = Object.keys(desired.metadata.labels!).filter(isConsumerLabel).sort();
  return sameList(ours, wanted);
}

function replacement(object: AddressSet, observed: AddressSet): AddressSet {
  const { managedFields: _managed, ...metadata } = observed.metadata;
  const foreign = Object.fromEntries(Object.entries(observed.metadata.labels ?? {}).filter(([k]) => !isConsumerLabel(k)));
  return { ...object, metadata: { ...metadata, labels: { ...foreign, ...object.metadata.labels } } };
}

function deletion(o: AddressSet): ShardAction {
  return { kind: 'delete', name: o.metadata.name, uid: o.metadata.uid };
}
