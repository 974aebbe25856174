// Keeps every shared set's AddressSet shards equal to its compiled members, labelled for the nodes
// that use it. Each set is written once however many nodes use it. Ordering is what keeps agents
// whole: a node's CompiledPolicySet is written only after the sets it names are delivered to that
// node (ensureDelivered), and a node's label is removed from a set only after the CompiledPolicySet
// the apiserver holds for that node no longer names it (noteCps). Only the leader writes.
import { ApiException, type CustomObjectsApi } from '@kubernetes/client-node';
import { ASET_PLURAL, newestRevision, type AddressSet } from '../crds/address-set.ts';
import { deliveredTo } from '../crds/consumers.ts';
import { membersFromShards } from '../crds/resolve.ts';
import { CPS_GROUP, CPS_VERSION, type CompiledPolicySet, type IPSetKind } from '../crds/types.ts';
import { Backoff, sleep } from '../runtime/backoff.ts';
import type { Logger } from '../runtime/log.ts';
import type { SharedSet } from './compile/compiler.ts';
import type { OperatorMetrics, WriteResult } from './metrics.ts';
import { planSet, type ShardAction } from './set-plan.ts';
import { layoutInForce, setOfShard, SetStore } from './set-store.ts';
import { KeyedWorkQueue } from './work-queue.ts';
import { errorText } from './write-errors.ts';

const api = { group: CPS_GROUP, version: CPS_VERSION, plural: ASET_PLURAL };
const MAX_ATTEMPTS = 5;

export interface SetWriterDeps {
  custom: CustomObjectsApi;
  /** The compiled set, undefined when no compiled node uses it. */
  desired: (set: string) => SharedSet | undefined;
  /** Every set some compiled node uses. */
  setIds: () => string[];
  concurrency: number;
  metrics: OperatorMetrics;
  log: Logger;
}

class Conflict extends Error {}

export class SetWriter {
  readonly store = new SetStore();
  private readonly deps: SetWriterDeps;
  private readonly queue: KeyedWorkQueue;
  private readonly retries = new Map<string, Backoff>();
  /** Set → nodes whose CompiledPolicySet on the apiserver names it, and each node's names. */
  private readonly namedBy = new Map<string, Set<string>>();
  private readonly namesOf = new Map<string, string[]>();
  private leading = false;
  /** Sets found or made equal to the compile since this replica began leading. */
  private readonly maintained = new Set<string>();

  constructor(deps: SetWriterDeps) {
    this.deps = deps;
    this.queue = new KeyedWorkQueue((set) => this.sync(set), deps.concurrency);
  }

  get depth(): number {
    return this.queue.depth;
  }

  idle(): boolean {
    return this.queue.idle();
  }

  /** An AddressSet watch event: the store learns of it; a leader checks the set (repairing hand edits). */
  observe(type: 'upsert' | 'delete', object: AddressSet): void {
    const changed = type === 'delete' ? this.store.delete(object) : this.store.upsert(object);
    if (changed) this.schedule([setOfShard(object.metadata.name)]);
  }

  /** A CompiledPolicySet watch event: which sets that node's object names now. Sets it stopped naming are checked. */
  noteCps(type: 'upsert' | 'delete', object: CompiledPolicySet): void {
    const node = object.metadata.name;
    const before = this.namesOf.get(node) ?? [];
    const after = type === 'delete' ? [] : (object.spec?.sharedSets ?? []).map((r) => r.name);
    for (const set of before) this.namedBy.get(set)?.delete(node);
    for (const set of after) {
      let nodes = this.namedBy.get(set);
      if (!nodes) this.namedBy.set(set, (nodes = new Set()));
      nodes.add(node);
    }
    if (after.length) this.namesOf.set(node, after);
    else this.namesOf.delete(node);
    const dropped = before.filter((s) => !after.includes(s));
    for (const set of dropped) if (this.namedBy.get(set)?.size === 0) this.namedBy.delete(set);
    this.schedule(dropped);
  }

  schedule(sets: Iterable<string>): void {
    if (!this.leading) return;
    for (const set of sets) this.queue.add(set);
  }

  lead(): void {
    this.leading = true;
    this.maintained.clear();
    for (const set of new Set([...this.deps.setIds(), ...this.store.setIds()])) this.queue.add(set);
    this.queue.resume();
  }

  async standBy(): Promise<void> {
    this.leading = false;
    this.maintained.clear();
    this.queue.pause();
    this.queue.clear();
    await this.queue.drain();
  }

  /**
   * Resolves true once every named set has a whole layout on the apiserver that reaches `node`'s agent
   * (syncing those that do not yet), false when some could not be written: the caller retries later.
   */
  async ensureDelivered(node: string, refs: ReadonlyArray<{ name: string; kind: IPSetKind }>): Promise<boolean> {
    // Current, not only whole: a spec must never name a set whose shards still hold members the
    // compile has moved past (another operator may have led meanwhile and left them behind).
    // Once a set has been brought up to date under this leadership, its later changes are ours and
    // already queued: waiting for each would starve the spec of a set that churns without pause.
    const ready = (r: { name: string; kind: IPSetKind }) => this.delivered(r, node) && (this.maintained.has(r.name) || this.current(r.name));
    const pending = refs.filter((r) => !ready(r));
    if (pending.length === 0) return true;
    for (const r of pending) this.queue.add(r.name);
    await Promise.all(pending.map((r) => this.queue.settled(r.name)));
    return pending.every(ready);
  }

  /** The newest resourceVersion among the shards of the set's layout in force (what a spec written now was written against). */
  revisionOf(set: string): string | undefined {
    const shards = this.store.shards(set);
    const layout = layoutInForce(shards);
    return newestRevision(shards.filter((s) => s.spec?.epoch === layout?.epoch))?.toString();
  }

  private current(set: string): boolean {
    return planSet(set, this.deps.desired(set), [...(this.namedBy.get(set) ?? [])].sort(), this.store.shards(set)).writes.length === 0;
  }

  private delivered(ref: { name: string; kind: IPSetKind }, node: string): boolean {
    const shards = this.store.shards(ref.name);
    const whole = membersFromShards({ ...ref, origin: '' }, shards.map((s) => s.spec));
    if ('missing' in whole) return false;
    return shards.filter((s) => s.spec.epoch === whole.epoch).every((s) => deliveredTo(s.metadata.labels, node));
  }

  private async sync(set: string): Promise<void> {
    const backoff = new Backoff(50, 1000);
    // Only failures count against the attempts: a set that keeps changing is written round after round.
    let failures = 0;
    for (let round = 0; round < 50 && failures < MAX_ATTEMPTS && this.leading; round++) {
      const plan = planSet(set, this.deps.desired(set), [...(this.namedBy.get(set) ?? [])].sort(), this.store.shards(set));
      if (plan.writes.length === 0 && plan.deletes.length === 0) {
        this.retries.delete(set);
        this.maintained.add(set);
        return;
      }
      try {
        await Promise.all(plan.writes.map((a) => this.execute(a)));
        await Promise.all(plan.deletes.map((a) => this.execute(a)));
        continue; // plan again: the store now holds what was written, and the next plan is empty
      } catch (e) {
        failures++;
        if (!(e instanceof Conflict)) {
          this.count('error');
          this.deps.log.warn({ set, err: errorText(e) }, 'AddressSet write failed');
        }
      }
      if (failures < MAX_ATTEMPTS) await sleep(backoff.next());
    }
    if (!this.leading) return;
    const later = this.retries.get(set) ?? new Backoff(1000, 30_000);
    this.retries.set(set, later);
    const delay = later.next();
    this.deps.log.warn({ set, retryMs: Math.round(delay) }, 'AddressSet not written; retrying later');
    this.queue.retryLater(set, performance.now(), delay);
  }

  private async execute(action: ShardAction): Promise<void> {
    try {
      if (action.kind === 'delete') {
        await this.deps.custom.deleteClusterCustomObject({ ...api, name: action.name, body: action.uid ? { preconditions: { uid: action.uid } } : undefined });
        this.store.delete({ metadata: { name: action.name, uid: action.uid } });
        this.count('deleted');
        return;
      }
      const body = action.object;
      const written = (action.kind === 'create'
        ? await this.deps.custom.createClusterCustomObject({ ...api, body })
        : await this.deps.custom.replaceClusterCustomObject({ ...api, name: body.metadata.name, body })) as AddressSet;
      this.store.upsert(written);
      this.count(action.kind === 'create' ? 'created' : 'updated');
      this.deps.metrics.asetBytes.inc(Buffer.byteLength(JSON.stringify(body)));
    } catch (e) {
      const code = e instanceof ApiException ? e.code : undefined;
      const name = action.kind === 'delete' ? action.name : action.object.metadata.name;
      if (action.kind === 'delete' && code === 404) {
        this.store.delete({ metadata: { name } });
        return;
      }
      if (code !== 409 && code !== 404) throw e;
      this.count('conflict');
      await this.read(name);
      throw new Conflict(name);
    }
  }

  private async read(name: string): Promise<void> {
    try {
      this.store.upsert((await this.deps.custom.getClusterCustomObject({ ...api, name })) as AddressSet);
    } catch (e) {
      if (e instanceof ApiException && e.code === 404) this.store.delete({ metadata: { name } });
    }
  }

  private count(result: WriteResult): void {
    this.deps.metrics.asetWrites.inc({ result });
  }
}
