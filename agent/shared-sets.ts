// The AddressSet shards an agent has received, from one or more watches (each selects by another
// label, and a shard moving between them may be seen leaving one before it enters the other, or the
// other way round). A shard counts while any watch holds it; each shard is checked once per version
// as it arrives, and one that fails is left out (its set is then incomplete and waits).
import { newestRevision, revision, setOfShard, type AddressSet, type AddressSetSpec } from '../crds/address-set.ts';
import { membersFromShards, type SetLookup } from '../crds/resolve.ts';
import { addressSetSchemaErrors } from '../crds/schema.ts';
import type { SharedSetRef } from '../crds/types.ts';
import { memberProblem } from './member-syntax.ts';

interface Held { object: AddressSet; problem?: string }

export class SharedSetCache {
  /** Per watch, shard name → shard. */
  private readonly sources = new Map<string, Map<string, Held>>();
  /** Set → shard name → the shard in force (the newest version any watch holds). */
  private readonly bySet = new Map<string, Map<string, Held>>();
  /** Members resolved per set, until one of its shards changes. */
  private readonly resolved = new Map<string, { kind: string; result: ReturnType<typeof membersFromShards>; newest?: bigint }>();
  private readonly trusted = new WeakSet<string[]>();

  /** A watch event; true when what some set resolves to may have changed. */
  apply(source: string, type: 'upsert' | 'delete', object: AddressSet): boolean {
    let held = this.sources.get(source);
    if (!held) this.sources.set(source, (held = new Map()));
    const name = object.metadata.name;
    if (type === 'delete') held.delete(name);
    else if (held.get(name)?.object.metadata.resourceVersion !== object.metadata.resourceVersion) held.set(name, check(object));
    return this.refresh(name);
  }

  /** Members of a set as its shards give them, or why they cannot be had. */
  readonly lookup: SetLookup = (ref: SharedSetRef) => {
    let cached = this.resolved.get(ref.name);
    if (cached?.kind !== ref.kind) {
      const shards = [...(this.bySet.get(ref.name)?.values() ?? [])];
      const bad = shards.find((s) => s.problem);
      const result = bad ? { missing: `shard ${bad.object.metadata.name} is rejected: ${bad.problem}` } : membersFromShards(ref, shards.map((s) => s.object.spec));
      if ('members' in result) this.trusted.add(result.members);
      const newest = 'members' in result ? newestRevision(shards.filter((s) => s.object.spec.epoch === result.epoch).map((s) => s.object)) : undefined;
      this.resolved.set(ref.name, (cached = { kind: ref.kind, result, newest }));
    }
    // The spec was written against shards at least this new: older ones are not what it means yet.
    if (ref.revision && 'members' in cached.result && (cached.newest === undefined || cached.newest < BigInt(ref.revision))) {
      return { missing: `waiting for its shards as of revision ${ref.revision} (holding ${cached.newest ?? 'none'})` };
    }
    return cached.result;
  };

  /** Whether these exact members came from shards checked on arrival (their syntax need not be checked again). */
  isChecked(members: string[]): boolean {
    return this.trusted.has(members);
  }

  shardCount(): number {
    let n = 0;
    for (const shards of this.bySet.values()) n += shards.size;
    return n;
  }

  private refresh(name: string): boolean {
    let newest: Held | undefined;
    for (const held of this.sources.values()) {
      const h = held.get(name);
      if (h && (!newest || newer(h.object, newest.object))) newest = h;
    }
    const set = newest?.object.spec?.set ?? this.setOfName(name);
    if (set === undefined) return false;
    let shards = this.bySet.get(set);
    const before = shards?.get(name);
    if (before === newest) return false;
    if (before && newest && sameVersion(before.object, newest.object)) {
      shards!.set(name, newest); // the same version, now held by another watch
      return false;
    }
    if (newest) {
      if (!shards) this.bySet.set(set, (shards = new Map()));
      shards.set(name, newest);
    } else {
      shards?.delete(name);
      if (shards?.size === 0) this.bySet.delete(set);
    }
    // A shard whose spec.set changed (hand edit) leaves its old set too.
    if (before && newest && before.object.spec.set !== newest.object.spec.set) this.forget(before.object.spec.set, name);
    this.resolved.delete(set);
    return true;
  }

  private forget(set: string, name: string): void {
    this.bySet.get(set)?.delete(name);
    this.resolved.delete(set);
  }

  private setOfName(name: string): string | undefined {
    for (const [set, shards] of this.bySet) if (shards.has(name)) return set;
    return undefined;
  }
}

function check(object: AddressSet): Held {
  const schema = addressSetSchemaErrors(object);
  if (schema.length) return { object: withSpec(object), problem: `schema: ${schema.slice(0, 3).join('; ')}` };
  const spec = object.spec;
  if (spec.size !== spec.members.length) return { object, problem: `size ${spec.size} but ${spec.members.length} members` };
  const bad = spec.members.find((m) => memberProblem(spec.kind, m));
  if (bad !== undefined) return { object, problem: `"${bad}" is not a valid ${spec.kind} member` };
  return { object };
}

/** Keeps a shard whose spec is unusable indexable by name (its set is then reported incomplete). */
function withSpec(object: AddressSet): AddressSet {
  const spec = (object.spec ?? {}) as Partial<AddressSetSpec>;
  const set = typeof spec.set === 'string' ? spec.set : setOfShard(object.metadata.name);
  return { ...object, spec: { ...spec, set, members: Array.isArray(spec.members) ? spec.members : [] } as AddressSetSpec };
}

function sameVersion(a: AddressSet, b: AddressSet): boolean {
  return a.metadata.uid === b.metadata.uid && a.metadata.resourceVersion === b.metadata.resourceVersion;
}

/** resourceVersions are etcd revisions: compared as numbers (the same object seen by two watches). */
function newer(a: AddressSet, b: AddressSet): boolean {
  const ra = revision(a);
  const rb = revision(b);
  return ra !== undefined && rb !== undefined ? ra > rb : (a.metadata.resourceVersion ?? '') > (b.metadata.resourceVersion ?? '');
}
