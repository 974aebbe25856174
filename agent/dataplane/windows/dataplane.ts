// Applies CompiledPolicySet specs to HNS: translate, read what HNS holds (or trust the last apply),
// plan the fewest writes, and write them in a safe order: set policies first (an ACL may only name an
// existing set), then the endpoints whose ACLs change, then the removal of sets no ACL names any more.
// A failed write undoes every write before it, in reverse order, and throws: the agent reports Degraded
// and retries, and the previous generation stays enforced.
import type { CompiledPolicySetSpec } from '../../../crds/types.ts';
import type { NpmWindowsMetrics } from '../../../runtime/npm-metrics.ts';
import type { Dataplane, DataplaneOutcome } from '../dataplane.ts';
import type { HnsClient } from './hns-client.ts';
import { HnsIo } from './hns-io.ts';
import { isFencerAcl } from './hns-types.ts';
import { describePlan, planApply, type HnsState, type Plan } from './plan.ts';
import { translateSpec, type TranslateOptions } from './translate.ts';

export interface WindowsDataplaneOptions {
  client: HnsClient;
  translate?: TranslateOptions;
  /** ACLs sent in one HNS request for one endpoint (default 200). */
  maxAclsPerCall?: number;
  /** Set policies sent in one HNS network request (default 100). */
  maxSetsPerCall?: number;
  metrics?: NpmWindowsMetrics;
}

export interface WindowsApplyOutcome extends DataplaneOutcome {
  /** Targeted pod IPs without an endpoint on this node yet; the drift check programs them when they appear. */
  missingEndpoints: string[];
  /** What HNS could not express (that traffic is blocked). */
  diagnostics: string[];
}

export class WindowsApplyError extends Error {
  readonly step: string;
  readonly rollbackErrors: string[];
  constructor(step: string, cause: Error, rollbackErrors: string[]) {
    const undo = rollbackErrors.length ? `; rollback incomplete: ${rollbackErrors.join('; ')}` : '; previous state restored';
    super(`${step}: ${cause.message}${undo}`);
    this.step = step;
    this.rollbackErrors = rollbackErrors;
  }
}

type Undo = () => Promise<void>;

export class WindowsDataplane implements Dataplane {
  private readonly io: HnsIo;
  private readonly translateOptions: TranslateOptions;
  /** HNS after our last fully successful apply; dropped on any failure or drift check. */
  private known?: HnsState;

  constructor(opts: WindowsDataplaneOptions) {
    this.io = new HnsIo(opts.client, { maxAclsPerCall: opts.maxAclsPerCall ?? 200, maxSetsPerCall: opts.maxSetsPerCall ?? 100, metrics: opts.metrics });
    this.translateOptions = opts.translate ?? {};
  }

  async apply(spec: CompiledPolicySetSpec): Promise<WindowsApplyOutcome> {
    const desired = translateSpec(spec, this.translateOptions);
    const known = this.known;
    this.known = undefined;
    let state: HnsState;
    try {
      // A targeted IP the cache has no endpoint for may have one now: read HNS again.
      state = known && [...desired.endpoints.keys()].every((ip) => known.endpoints.has(ip)) ? known : await this.io.readState();
    } catch (e) {
      throw new WindowsApplyError('reading HNS state', e as Error, []);
    }
    const plan = planApply(desired, state);
    const outcome: WindowsApplyOutcome = { kind: plan.kind, counts: plan.counts, ipsetMs: 0, iptablesMs: 0, missingEndpoints: plan.missing, diagnostics: desired.diagnostics };
    await this.write(plan, outcome);
    if (plan.missing.length === 0) this.known = plan.after;
    return outcome;
  }

  /** What applying the spec would change now; empty when HNS holds exactly the spec. */
  async drift(spec: CompiledPolicySetSpec): Promise<string[]> {
    this.known = undefined;
    return describePlan(planApply(translateSpec(spec, this.translateOptions), await this.io.readState()));
  }

  /** Removes every ACL and set policy Fencer owns, and nothing else. */
  async cleanup(): Promise<void> {
    this.known = undefined;
    const state = await this.io.readState();
    for (const ep of state.endpoints.values()) {
      if (ep.acls.some(isFencerAcl)) await this.io.writeAcls(ep.id, ep.acls.filter((a) => !isFencerAcl(a)));
    }
    await this.io.removeSets([...state.sets.values()], () => {});
  }

  /** Forgets the cached HNS state: the next apply reads HNS. */
  forget(): void {
    this.known = undefined;
  }

  /** Sets, then endpoints, then removals; on a failure every earlier write is undone, newest first. */
  private async write(plan: Plan, outcome: WindowsApplyOutcome): Promise<void> {
    const undo: Undo[] = [];
    let step = 'writing set policies';
    try {
      let started = performance.now();
      await this.writeSets(plan, undo);
      outcome.ipsetMs = performance.now() - started;
      step = 'writing endpoint ACLs';
      started = performance.now();
      await this.writeEndpoints(plan, undo);
      outcome.iptablesMs = performance.now() - started;
      step = 'removing unused set policies';
      started = performance.now();
      await this.io.removeSets(plan.removeSets, (batch) => undo.push(() => this.io.writeSets('create', batch, () => {})));
      outcome.ipsetMs += performance.now() - started;
    } catch (e) {
      throw new WindowsApplyError(step, e as Error, await rollback(undo));
    }
  }

  private async writeSets(plan: Plan, undo: Undo[]): Promise<void> {
    await this.io.writeSets('create', plan.createSets, (batch) => undo.push(() => this.io.removeSets(batch, () => {})));
    const before = new Map(plan.updateSets.map((u) => [u.set.Id, u.before]));
    await this.io.writeSets('update', plan.updateSets.map((u) => u.set), (batch) => undo.push(() => this.io.writeSets('update', batch.map((s) => before.get(s.Id)!), () => {})));
  }

  private async writeEndpoints(plan: Plan, undo: Undo[]): Promise<void> {
    for (const w of plan.endpointWrites) {
      // Registered before the write: a write that fails half-way is restored too (the restore is idempotent).
      undo.push(() => this.io.writeAcls(w.id, w.before));
      await this.io.writeAcls(w.id, w.after);
    }
  }
}

async function rollback(undo: Undo[]): Promise<string[]> {
  const errors: string[] = [];
  for (const step of [...undo].reverse()) {
    try {
      await step();
    } catch (e) {
      errors.push((e as Error).message);
    }
  }
  return errors;
}
