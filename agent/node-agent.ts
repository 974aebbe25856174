// The agent's loop: take the node's latest CompiledPolicySet, validate it whole, apply it, report.
// One sync at a time; failures retry with back-off; a drift check re-applies what someone removed.
import type { CompiledPolicySet, CompiledPolicySetSpec, CompiledPolicySetStatus } from '../crds/types.ts';
import { Backoff } from '../runtime/backoff.ts';
import type { Logger } from '../runtime/log.ts';
import type { Dataplane } from './dataplane/dataplane.ts';
import type { AgentMetrics } from './metrics.ts';
import { buildStatus, sameStatus, type AgentReport, type Enforced } from './status.ts';
import { AcceptedMembers, checkCps, DEFAULT_LIMITS, type SharedSetSource, type ValidationLimits } from './validate.ts';

export interface StatusWriter {
  /** False when the object changed since `cps` was read (the newer version brings its own sync). */
  writeStatus(cps: CompiledPolicySet, status: CompiledPolicySetStatus): Promise<boolean>;
}

export interface NodeAgentOptions {
  nodeName: string;
  agentName: string;
  dataplane: Dataplane;
  statusWriter: StatusWriter;
  metrics: AgentMetrics;
  log: Logger;
  driftIntervalMs?: number;
  limits?: ValidationLimits;
  /** The AddressSet shards received (absent: the spec must carry every set itself). */
  sharedSets?: SharedSetSource;
}

export class NodeAgent {
  private readonly opts: NodeAgentOptions;
  private readonly backoff = new Backoff(500, 30000);
  private readonly accepted = new AcceptedMembers();
  private latest?: CompiledPolicySet;
  private receivedAt = 0;
  /** What is enforced: the whole spec, and the object it came from (re-resolved when shared sets change). */
  private enforced?: Enforced & { spec: CompiledPolicySetSpec; cps: CompiledPolicySet };
  private problem?: AgentReport['problem'];
  private running?: Promise<void>;
  private again = false;
  private retryTimer?: NodeJS.Timeout;
  private driftTimer?: NodeJS.Timeout;
  private stopped = false;
  /** The last status written, and the resourceVersion it was written onto. */
  private written?: { base?: string; status: CompiledPolicySetStatus };
  private readonly enforcedListeners = new Set<() => void>();

  constructor(opts: NodeAgentOptions) {
    this.opts = opts;
  }

  /** The generation enforced now, if any. */
  enforcedGeneration(): number | undefined {
    return this.enforced?.generation;
  }

  /** The whole spec in the kernel now (shared sets filled in), if any. */
  enforcedSpec(): CompiledPolicySetSpec | undefined {
    return this.enforced?.spec;
  }

  /** Calls `listener` after every apply that succeeded (members of shared sets included); returns the unsubscribe. */
  onEnforced(listener: () => void): () => void {
    this.enforcedListeners.add(listener);
    return () => this.enforcedListeners.delete(listener);
  }

  healthy(): boolean {
    return !this.problem || this.problem.reason === 'WaitingForSets';
  }

  /** Lets the dataplane read the live state while the watch lists (call before starting it). */
  prepare(): void {
    void this.opts.dataplane.prepare?.();
  }

  start(): void {
    const every = this.opts.driftIntervalMs ?? 10000;
    if (every > 0) this.driftTimer = setInterval(() => void this.checkDrift(), every);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.driftTimer);
    clearTimeout(this.retryTimer);
    await this.running;
  }

  /** A new version of the node's CompiledPolicySet (undefined: deleted; the last good state stays). */
  offer(cps: CompiledPolicySet | undefined): Promise<void> {
    if (cps && cps.metadata.generation !== this.latest?.metadata.generation) this.receivedAt = performance.now();
    const sameSpec = !!cps && cps.metadata.generation === this.latest?.metadata.generation && cps.spec?.contentHash === this.latest?.spec?.contentHash;
    this.latest = cps;
    // A status-only change (the agent's own Degraded report among them) while a failed apply waits
    // for its back-off: the retry will use this version; syncing now would defeat the back-off.
    if (sameSpec && this.retryTimer !== undefined) return Promise.resolve();
    return this.kick();
  }

  /** Shards of shared sets arrived or changed: the latest spec (or, while it waits, the enforced one) takes their members. */
  offerSets(): Promise<void> {
    if (this.retryTimer !== undefined && this.problem?.reason === 'ApplyFailed') return Promise.resolve();
    return this.kick();
  }

  /** Runs a sync now, or right after the one in progress. */
  kick(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      try {
        do {
          this.again = false;
          await this.sync();
        } while (this.again && !this.stopped);
      } catch (e) {
        // A bug must not wedge the loop: the next event or drift check syncs again.
        this.opts.log.error({ err: (e as Error).message }, 'sync failed unexpectedly');
      } finally {
        this.running = undefined;
      }
    })();
    return this.running;
  }

  private async sync(): Promise<void> {
    const cps = this.latest;
    if (!cps) return;
    const { metrics, log } = this.opts;
    const { errors, spec, waiting } = this.check(cps);
    if (waiting) {
      const message = `waiting for shared sets: ${waiting.slice(0, 5).join('; ')}${waiting.length > 5 ? ` (and ${waiting.length - 5} more)` : ''}; the last good state stays enforced`;
      if (this.problem?.message !== message) log.info({ generation: cps.metadata.generation, waiting: waiting.length }, 'generation waits for shared sets');
      this.problem = { reason: 'WaitingForSets', message };
      await this.reassertLastGood();
      await this.report(cps);
      return;
    }
    if (!spec) {
      metrics.applies.inc({ result: 'invalid' });
      log.error({ generation: cps.metadata.generation, errors }, 'CompiledPolicySet rejected; keeping the last good state');
      this.problem = { reason: 'Invalid', message: `rejected, the last good state stays enforced: ${errors.join('; ')}` };
      await this.reassertLastGood();
      await this.report(cps);
      return;
    }
    await this.applySpec(cps, spec);
  }

  private async applySpec(cps: CompiledPolicySet, spec: CompiledPolicySetSpec): Promise<void> {
    const { metrics, log, dataplane } = this.opts;
    const started = performance.now();
    try {
      const outcome = await dataplane.apply(spec);
      const seconds = (performance.now() - started) / 1000;
      metrics.applySeconds.observe({ kind: outcome.kind, result: 'ok' }, seconds);
      metrics.applies.inc({ result: outcome.kind });
      metrics.addPolicyExecTime.observe({ had_error: 'false' }, seconds * 1000);
      if (outcome.kind !== 'noop') {
        metrics.addIpsetExecTime.observe(outcome.ipsetMs);
        metrics.addIptablesRuleExecTime.observe(outcome.iptablesMs);
        if (outcome.kind === 'rules') metrics.iptablesRestoreLatency.observe({ operation: 'update' }, outcome.iptablesMs / 1000);
      }
      const isNew = this.enforced?.generation !== cps.metadata.generation || this.enforced?.hash !== spec.contentHash;
      // A re-apply of what is enforced keeps its time: status then stays byte-equal and is not rewritten.
      this.enforced = {
        generation: cps.metadata.generation ?? 0, hash: spec.contentHash, at: isNew ? new Date().toISOString() : this.enforced!.at, spec, cps,
        // Counts as of the generation's first apply: a shared set's member change is not worth a status
        // write on every node using it (the gauges on /node-metrics stay live).
        counts: isNew ? { iptablesRules: outcome.counts.rules, ipsets: outcome.counts.sets, ipsetEntries: outcome.counts.entries } : this.enforced!.counts,
      };
      if (isNew && this.receivedAt) metrics.receivedToEnforced.observe((performance.now() - this.receivedAt) / 1000);
      this.updateGauges(spec, outcome.counts);
      this.problem = undefined;
      this.backoff.reset();
      clearTimeout(this.retryTimer);
      this.retryTimer = undefined;
      this.notifyEnforced();
      if (outcome.kind !== 'noop') log.info({ generation: cps.metadata.generation, kind: outcome.kind, ms: Math.round(seconds * 1000), ipsetMs: Math.round(outcome.ipsetMs), iptablesMs: Math.round(outcome.iptablesMs), counts: outcome.counts }, 'applied');
    } catch (e) {
      const message = (e as Error).message;
      metrics.applies.inc({ result: 'failed' });
      metrics.addPolicyExecTime.observe({ had_error: 'true' }, performance.now() - started);
      if (/iptables-restore/.test(message)) metrics.iptablesRestoreFailures.inc();
      this.problem = { reason: 'ApplyFailed', message };
      const delay = this.backoff.next();
      log.error({ generation: cps.metadata.generation, err: message, retryMs: Math.round(delay), failures: this.backoff.failures }, 'apply failed; previous state kept');
      clearTimeout(this.retryTimer);
      this.retryTimer = setTimeout(() => {
        this.retryTimer = undefined;
        void this.kick();
      }, delay);
    }
    await this.report(cps);
  }

  private check(cps: CompiledPolicySet) {
    return checkCps(cps, this.opts.nodeName, this.opts.limits ?? DEFAULT_LIMITS, this.accepted, this.opts.sharedSets);
  }

  /**
   * Re-applies the last good spec while the latest cannot be (invalid, or waiting for sets): with
   * the current members of its shared sets when they are whole, so pod churn keeps flowing; as it
   * was otherwise (a no-op unless the kernel drifted).
   */
  private async reassertLastGood(): Promise<void> {
    const enforced = this.enforced;
    if (!enforced) return;
    const fresh = enforced.cps.spec.sharedSets?.length ? this.check(enforced.cps).spec : undefined;
    try {
      await this.opts.dataplane.apply(fresh ?? enforced.spec);
      if (fresh) {
        enforced.spec = fresh;
        this.notifyEnforced();
      }
    } catch (e) {
      this.opts.log.error({ err: (e as Error).message }, 'could not re-apply the last good state');
    }
  }

  private notifyEnforced(): void {
    for (const listener of [...this.enforcedListeners]) listener();
  }

  private updateGauges(spec: CompiledPolicySetSpec, counts: { rules: number; sets: number; entries: number }): void {
    const m = this.opts.metrics;
    m.numPolicies.set(spec.counts.policies);
    m.numIptablesRules.set(counts.rules);
    m.numIpsets.set(counts.sets);
    m.numIpsetEntries.set(counts.entries);
    m.enforcedGeneration.set(this.enforced?.generation ?? 0);
    m.ipsetCounts.reset();
    for (const s of spec.ipSets) m.ipsetCounts.set({ set_name: s.origin.slice(0, 120), set_hash: s.name }, s.members.length);
  }

  private async report(synced: CompiledPolicySet): Promise<void> {
    // The operator may mark a new generation InSync=Pending (when the report is slow), and that
    // status-only version can arrive while we apply: writing onto it rather than onto the
    // version we synced avoids a conflict and a second round trip before the report lands.
    const cps = this.latest && sameSpecVersion(this.latest, synced) ? this.latest : synced;
    // A status we wrote onto this very version is what the object carries now (its echo is on the way).
    const base = cps.metadata.resourceVersion;
    const current = base !== undefined && this.written?.base === base ? this.written.status : cps.status;
    const status = buildStatus(cps, { agent: this.opts.agentName, enforced: this.enforced, problem: this.problem }, current, new Date().toISOString());
    // Compared with what the object carries now, so a status someone else changed is rewritten.
    if (sameStatus(current, status)) return;
    try {
      if (await this.opts.statusWriter.writeStatus(cps, status)) this.written = { base, status };
    } catch (e) {
      this.opts.log.warn({ err: (e as Error).message }, 'status write failed; will retry on the next sync');
    }
  }

  private async checkDrift(): Promise<void> {
    const enforced = this.enforced;
    if (!enforced || this.running || this.stopped) return;
    try {
      const differences = await this.opts.dataplane.drift(enforced.spec);
      if (differences.length === 0) return;
      this.opts.metrics.driftRepairs.inc();
      this.opts.log.warn({ differences }, 'kernel state drifted from the enforced spec; repairing');
      await this.kick();
    } catch (e) {
      this.opts.log.warn({ err: (e as Error).message }, 'drift check failed');
    }
  }
}

/** Two versions of the object that differ at most in status. */
function sameSpecVersion(a: CompiledPolicySet, b: CompiledPolicySet): boolean {
  return a.metadata.uid === b.metadata.uid && a.metadata.generation === b.metadata.generation && a.spec?.contentHash === b.spec?.contentHash;
}
