// Keeps every node's CompiledPolicySet equal to its compiled spec, writing only when the content hash
// (or owner, or label) differs from what the CPS watch shows. Method: update with resourceVersion
// (optimistic concurrency). A 409 re-reads the object and decides again from the fresh copy, at most
// MAX_ATTEMPTS times with back-off, then the node is retried later on a per-node back-off: no
// storms. Only the leader writes; a standby keeps the store warm. See in-sync.ts for the status.
import { ApiException, PatchStrategy, setHeaderOptions, type CustomObjectsApi } from '@kubernetes/client-node';
import { SpecTooLargeError } from '../crds/codec.ts';
import { CPS_GROUP, CPS_PLURAL, CPS_VERSION, type CompiledPolicySet, type CompiledPolicySetSpec } from '../crds/types.ts';
import { Backoff, sleep } from '../runtime/backoff.ts';
import type { Logger } from '../runtime/log.ts';
import { CpsStore, type ObservedCps } from './cps-store.ts';
import { planCpsWrite, sameContent, type CpsAction, type NodeRef } from './cps-plan.ts';
import { conditionTime, pendingStatusPatch } from './in-sync.ts';
import type { OperatorMetrics, WriteResult } from './metrics.ts';
import { KeyedWorkQueue } from './work-queue.ts';
import { errorText } from './write-errors.ts';

const api = { group: CPS_GROUP, version: CPS_VERSION, plural: CPS_PLURAL };
const jsonPatch = setHeaderOptions('Content-Type', PatchStrategy.JsonPatch);
const MAX_ATTEMPTS = 5;

export interface WriterDeps {
  custom: CustomObjectsApi;
  /** The compiled spec of a node, undefined when it is not compiled (yet). */
  desired: (node: string) => CompiledPolicySetSpec | undefined;
  /** Resolves true once the shared sets a spec names reach the node's agent (written first, so an agent never waits long). */
  setsReady: (node: string, refs: NonNullable<CompiledPolicySetSpec['sharedSets']>) => Promise<boolean>;
  /** The newest resourceVersion of a set's shards, stamped into the spec's reference as it is written. */
  setRevision: (set: string) => string | undefined;
  /** The Node by name, undefined when it does not exist. */
  nodeRef: (node: string) => NodeRef | undefined;
  nodeNames: () => string[];
  budgetBytes: number;
  concurrency: number;
  /** How long an agent has to report a new generation before InSync is marked Pending (0: at once). */
  pendingAfterMs: number;
  metrics: OperatorMetrics;
  log: Logger;
}

/** A version the operator may mark Pending: its metadata and status are all the mark needs. */
type PendingCandidate = Pick<CompiledPolicySet, 'metadata' | 'status'>;

type Attempt = { done: true } | { done: false; fresh: ObservedCps | undefined };

export class CpsWriter {
  readonly store = new CpsStore();
  private readonly deps: WriterDeps;
  private readonly queue: KeyedWorkQueue;
  private readonly retries = new Map<string, Backoff>();
  /** Spec versions no write of ours explains (hand edits, or seen at start-up), kept until compared with the compile. */
  private readonly unchecked = new Map<string, CompiledPolicySet>();
  /** Versions whose content differs from what their contentHash claims: rewritten like a hash difference. */
  private readonly tampered = new Map<string, { uid: unknown; generation?: number }>();
  private leading = false;
  /** Pending marks waiting for their agent, by node, and the latest version each would go onto. */
  private readonly pendingTimers = new Map<string, NodeJS.Timeout>();
  private readonly unreported = new Map<string, PendingCandidate>();

  constructor(deps: WriterDeps) {
    this.deps = deps;
    this.queue = new KeyedWorkQueue((node, since) => this.sync(node, since), deps.concurrency);
  }

  get depth(): number {
    return this.queue.depth;
  }

  idle(): boolean {
    return this.queue.idle();
  }

  /** A CPS watch event: the store learns of it, and a leader checks the node (repairing hand edits). */
  observe(type: 'upsert' | 'delete', object: CompiledPolicySet): void {
    if (type === 'upsert') this.noteContent(object);
    else this.unchecked.delete(object.metadata.name);
    const changed = type === 'delete' ? this.store.delete(object) : this.store.upsert(object);
    if (changed && this.leading) this.queue.add(object.metadata.name);
  }

  /** Nodes whose compiled spec changed; `since` is when the first event that changed them arrived. */
  enqueue(node: string, since?: number): void {
    if (this.leading) this.queue.add(node, since);
  }

  /** Becomes the writer: checks every node and every existing CPS (stale ones are deleted). */
  lead(): void {
    this.leading = true;
    for (const name of new Set([...this.deps.nodeNames(), ...this.store.names()])) this.queue.add(name);
    // A write the previous leader (or this process before a restart) made shortly before it stopped
    // may still wait for its report: such versions get the same grace, then the mark.
    for (const object of this.store.all()) if ((object.status?.observedGeneration ?? 0) < (object.metadata.generation ?? 0)) this.markPendingLater(object);
    this.queue.resume();
  }

  /** Stops writing; writes in flight finish. */
  async standBy(): Promise<void> {
    this.leading = false;
    for (const timer of this.pendingTimers.values()) clearTimeout(timer);
    this.pendingTimers.clear();
    this.unreported.clear();
    this.queue.pause();
    this.queue.clear();
    await this.queue.drain();
  }

  private async sync(node: string, since: number): Promise<void> {
    let observed = this.store.get(node);
    const backoff = new Backoff(50, 1000);
    for (let attempt = 1; attempt <= MAX_ATTEMPTS && this.leading; attempt++) {
      const outcome = await this.attempt(node, observed, since);
      if (outcome.done) {
        this.retries.delete(node);
        return;
      }
      observed = outcome.fresh;
      if (attempt < MAX_ATTEMPTS) await sleep(backoff.next());
    }
    if (!this.leading) return;
    const later = this.retries.get(node) ?? new Backoff(1000, 30_000);
    this.retries.set(node, later);
    const delay = later.next();
    this.deps.log.warn({ node, retryMs: Math.round(delay) }, 'CompiledPolicySet not written; retrying later');
    this.queue.retryLater(node, since, delay);
  }

  /**
   * A spec version the store does not know yet (not the echo of our own write): its content is
   * compared with the compile before "same contentHash" is taken to mean "nothing to write", so an
   * edit by hand that left contentHash alone is repaired too.
   */
  private noteContent(object: CompiledPolicySet): void {
    const known = this.store.get(object.metadata.name);
    if (known && known.metadata.uid === object.metadata.uid && known.metadata.generation === object.metadata.generation) return;
    this.unchecked.set(object.metadata.name, object);
  }

  /** `observed`, marked as needing a write when its content was edited without its hash. */
  private checkContent(node: string, observed: ObservedCps | undefined, desired: CompiledPolicySetSpec | undefined): ObservedCps | undefined {
    if (!observed) return observed;
    const seen = this.unchecked.get(node);
    const sameVersion = (v: { metadata: { uid?: unknown; generation?: number } }) => v.metadata.uid === observed.metadata.uid && v.metadata.generation === observed.metadata.generation;
    if (seen && desired) {
      this.unchecked.delete(node);
      if (sameVersion(seen) && seen.spec?.contentHash === desired.contentHash && !sameContent(seen.spec, desired)) {
        this.tampered.set(node, { uid: observed.metadata.uid, generation: observed.metadata.generation });
        this.deps.log.warn({ node, generation: observed.metadata.generation }, 'CompiledPolicySet content does not match its contentHash (edited by hand?); rewriting it');
      }
    }
    const bad = this.tampered.get(node);
    if (!bad) return observed;
    if (bad.uid !== observed.metadata.uid || (bad.generation ?? 0) < (observed.metadata.generation ?? 0)) {
      this.tampered.delete(node);
      return observed;
    }
    return { ...observed, spec: { ...observed.spec, contentHash: `${observed.spec.contentHash} (content differs)` } };
  }

  private async attempt(node: string, observed: ObservedCps | undefined, since: number): Promise<Attempt> {
    let action: CpsAction;
    try {
      const desired = this.deps.desired(node);
      action = planCpsWrite(desired, this.deps.nodeRef(node), this.checkContent(node, observed, desired), this.deps.budgetBytes);
    } catch (e) {
      if (!(e instanceof SpecTooLargeError)) throw e;
      this.count('too_large');
      this.deps.log.error({ node, err: e.message }, 'CompiledPolicySet exceeds the size budget; the previous one stays');
      return { done: true };
    }
    if (action.kind === 'noop') return { done: true };
    const refs = action.kind === 'delete' ? [] : action.object.spec.sharedSets ?? [];
    if (refs.length && !(await this.deps.setsReady(node, refs))) {
      this.deps.log.warn({ node }, 'the shared sets this CompiledPolicySet names are not written yet; waiting');
      return { done: false, fresh: this.store.get(node) };
    }
    const write = refs.length && action.kind !== 'delete' ? stampRevisions(action, this.deps.setRevision) : action;
    try {
      await this.execute(write, since);
      return { done: true };
    } catch (e) {
      return this.failed(node, write, e);
    }
  }

  private async failed(node: string, action: CpsAction, e: unknown): Promise<Attempt> {
    const code = e instanceof ApiException ? e.code : undefined;
    if (action.kind === 'delete' && code === 404) {
      this.store.delete({ metadata: { name: node } });
      return { done: true };
    }
    if (code === 409 || code === 404) {
      this.count('conflict');
      return { done: false, fresh: await this.read(node) };
    }
    this.count('error');
    this.deps.log.warn({ node, action: action.kind, code, err: errorText(e) }, 'CompiledPolicySet write failed');
    return { done: false, fresh: this.store.get(node) };
  }

  private async execute(action: Exclude<CpsAction, { kind: 'noop' }>, since: number): Promise<void> {
    if (action.kind === 'delete') {
      const body = action.uid ? { preconditions: { uid: action.uid } } : undefined;
      await this.deps.custom.deleteClusterCustomObject({ ...api, name: action.name, body });
      this.store.delete({ metadata: { name: action.name, uid: action.uid } });
      this.count('deleted');
      this.deps.log.info({ node: action.name }, 'CompiledPolicySet deleted (its Node is gone)');
      return;
    }
    const body = action.object;
    const written = (action.kind === 'create'
      ? await this.deps.custom.createClusterCustomObject({ ...api, body })
      : await this.deps.custom.replaceClusterCustomObject({ ...api, name: body.metadata.name, body })) as CompiledPolicySet;
    this.recordWrite(action.kind === 'create' ? 'created' : 'updated', written, Buffer.byteLength(JSON.stringify(body)), since);
    if (this.deps.pendingAfterMs === 0) await this.markPending(written);
    else this.markPendingLater(written);
  }

  /**
   * An agent that is alive reports a new generation within tens of milliseconds; marking every write
   * Pending at once doubled the writes per change (and slowed enforcement under load). The mark goes
   * only onto a version nobody has written since, which is exactly when its agent has not reported.
   */
  private markPendingLater(written: PendingCandidate): void {
    if (!this.leading) return;
    const node = written.metadata.name;
    this.unreported.set(node, written);
    // A running timer is kept: a node whose spec changes faster than the delay is still marked.
    if (this.pendingTimers.has(node)) return;
    this.pendingTimers.set(node, setTimeout(() => {
      this.pendingTimers.delete(node);
      const latest = this.unreported.get(node);
      this.unreported.delete(node);
      // Only onto the version the operator left: anything written since (a report) answers it.
      if (!this.leading || !latest || this.store.get(node)?.metadata.resourceVersion !== latest.metadata.resourceVersion) return;
      void this.markPending(latest);
    }, this.deps.pendingAfterMs));
  }


  private recordWrite(result: WriteResult, written: CompiledPolicySet, bytes: number, since: number): void {
    this.store.upsert(written);
    this.count(result);
    this.deps.metrics.cpsBytes.inc(bytes);
    this.deps.metrics.eventToWrite.observe((performance.now() - since) / 1000);
    this.deps.log.debug({ node: written.metadata.name, result, generation: written.metadata.generation, bytes }, 'CompiledPolicySet written');
  }

  /** InSync=False/Pending for the new generation, unless the agent has written status since (in-sync.ts). */
  private async markPending(written: PendingCandidate): Promise<void> {
    const ops = pendingStatusPatch(written, conditionTime());
    if (!ops) return;
    try {
      const patched = (await this.deps.custom.patchClusterCustomObjectStatus({ ...api, name: written.metadata.name, body: ops }, jsonPatch)) as CompiledPolicySet;
      this.store.upsert(patched);
      this.count('status');
    } catch (e) {
      const code = e instanceof ApiException ? e.code : undefined;
      if (code === 409 || code === 422 || code === 404) return; // the agent (or a deletion) got there first
      this.deps.log.warn({ node: written.metadata.name, code, err: errorText(e) }, 'could not mark CompiledPolicySet pending');
    }
  }

  private async read(node: string): Promise<ObservedCps | undefined> {
    try {
      const fresh = (await this.deps.custom.getClusterCustomObject({ ...api, name: node })) as CompiledPolicySet;
      this.store.upsert(fresh);
      return this.store.get(node);
    } catch (e) {
      if (e instanceof ApiException && e.code === 404) {
        this.store.delete({ metadata: { name: node } });
        return undefined;
      }
      this.deps.log.warn({ node, err: errorText(e) }, 'CompiledPolicySet re-read failed');
      return this.store.get(node);
    }
  }

  private count(result: WriteResult): void {
    this.deps.metrics.cpsWrites.inc({ result });
  }
}

/** The write with each shared set's current revision in its reference (a copy: the compiled spec is shared). */
function stampRevisions(action: Extract<CpsAction, { kind: 'create' | 'update' }>, revisionOf: (set: string) => string | undefined): Extract<CpsAction, { kind: 'create' | 'update' }> {
  const spec = action.object.spec;
  const sharedSets = spec.sharedSets!.map((r) => {
    const revision = revisionOf(r.name);
    return revision === undefined ? r : { ...r, revision };
  });
  return { ...action, object: { ...action.object, spec: { ...spec, sharedSets } } };
}
