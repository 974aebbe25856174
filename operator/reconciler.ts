// Turns watch events into compiled specs: every event is recorded in the compiler at once (cheap),
// the nodes it may change are marked dirty, and dirty nodes are recompiled together at most once per
// coalescing window: a change after a quiet window is compiled at once (no added latency), and
// whatever arrives within a window of the last compile waits for the window to end and goes in one
// compile, so a burst of churn costs at most two compiles (and writes) per node.
// Nothing is compiled before start(), which the operator calls once every watch has listed: the
// first compile sees the whole cluster, and a restart finds nothing to write when nothing changed.
import type { Summary } from 'prom-client';
import { objectKey } from '../model/cluster.ts';
import type { ClusterChange, CompileResult, PolicyCompiler } from './compile/compiler.ts';
import type { Logger } from '../runtime/log.ts';
import type { NodeRef } from './cps-plan.ts';
import type { PolicyEventReporter } from './events.ts';
import type { OperatorMetrics } from './metrics.ts';

type Operation = 'create' | 'update' | 'delete';

export interface ReconcilerDeps {
  compiler: PolicyCompiler;
  coalesceMs: number;
  metrics: OperatorMetrics;
  events: PolicyEventReporter;
  /** Nodes whose spec changed in a coalesced compile (each with when its first event arrived), and the shared sets that may have. */
  onCompiled: (changed: Map<string, number>, sets: string[]) => void;
  log: Logger;
}

export class Reconciler {
  private readonly deps: ReconcilerDeps;
  private readonly dirty = new Map<string, number>();
  private readonly known: Record<ClusterChange['kind'], Set<string>> = { Namespace: new Set(), Pod: new Set(), Node: new Set(), NetworkPolicy: new Set() };
  private readonly nodeUids = new Map<string, string>();
  private timer?: NodeJS.Timeout;
  private started = false;
  /** When the last compile ran (performance.now()). */
  private lastCompile = -Infinity;

  constructor(deps: ReconcilerDeps) {
    this.deps = deps;
  }

  /** Nodes waiting for the coalescing window to close. */
  get depth(): number {
    return this.dirty.size;
  }

  idle(): boolean {
    return this.started && this.dirty.size === 0 && !this.deps.compiler.hasSetChanges();
  }

  nodeRef(name: string): NodeRef | undefined {
    const uid = this.nodeUids.get(name);
    return uid === undefined ? undefined : { name, uid };
  }

  handle(change: ClusterChange): void {
    const operation = this.operation(change);
    const started = performance.now();
    let nodes = new Set<string>();
    let hadError = false;
    try {
      nodes = this.deps.compiler.applyChange(change);
    } catch (e) {
      hadError = true;
      this.deps.log.error({ kind: change.kind, object: objectKey(change.object), err: (e as Error).message }, 'compiler rejected a change');
    }
    this.record(change, operation, hadError, performance.now() - started);
    this.markDirty(nodes, started);
  }

  /** The first compile, of every node; returns every spec. */
  start(): CompileResult {
    this.started = true;
    this.lastCompile = performance.now();
    const nodes = new Set([...this.deps.compiler.nodeNames(), ...this.dirty.keys()]);
    this.dirty.clear();
    const result = this.deps.compiler.recompile(nodes);
    // The leader checks every set when it starts leading: these need no separate report.
    this.deps.compiler.takeSetChanges();
    return result;
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Recompiles the dirty nodes now (the coalescing timer calls this). */
  flush(): void {
    this.timer = undefined;
    const batch = new Map(this.dirty);
    this.dirty.clear();
    const started = performance.now();
    let result: CompileResult;
    try {
      result = this.deps.compiler.recompile(batch.keys());
    } catch (e) {
      this.deps.log.error({ nodes: batch.size, err: (e as Error).message }, 'recompile failed');
      return;
    } finally {
      // The window counts from the end of a compile: a compile longer than it never runs back to back.
      this.lastCompile = performance.now();
    }
    const sets = this.deps.compiler.takeSetChanges();
    this.deps.log.debug({ dirty: batch.size, changed: result.size, sets: sets.length, ms: Math.round(performance.now() - started) }, 'recompiled');
    this.deps.onCompiled(new Map([...result.keys()].map((node) => [node, batch.get(node)!])), sets);
  }

  private markDirty(nodes: Set<string>, at: number): void {
    for (const node of nodes) if (!this.dirty.has(node)) this.dirty.set(node, at);
    if (!this.started || this.timer || (this.dirty.size === 0 && !this.deps.compiler.hasSetChanges())) return;
    // A zero delay still runs after the other events of the same watch chunk.
    const wait = Math.max(0, this.lastCompile + this.deps.coalesceMs - performance.now());
    this.timer = setTimeout(() => this.flush(), wait);
  }

  private operation(change: ClusterChange): Operation {
    const keys = this.known[change.kind];
    const key = objectKey(change.object);
    if (change.type === 'delete') {
      keys.delete(key);
      return 'delete';
    }
    const existed = keys.has(key);
    keys.add(key);
    return existed ? 'update' : 'create';
  }

  private record(change: ClusterChange, operation: Operation, hadError: boolean, ms: number): void {
    const npm = this.deps.metrics.npm;
    const labels = { operation, had_error: String(hadError) };
    if (change.kind === 'Pod') npm.controllerPodExecTime.observe(labels, ms);
    if (change.kind === 'Namespace') npm.controllerNamespaceExecTime.observe(labels, ms);
    if (change.kind === 'Node') this.trackNode(change);
    if (change.kind === 'NetworkPolicy') this.recordPolicy(change, npm.controllerPolicyExecTime, labels, ms);
  }

  private recordPolicy(change: Extract<ClusterChange, { kind: 'NetworkPolicy' }>, summary: Summary, labels: { operation: Operation; had_error: string }, ms: number): void {
    summary.observe(labels, ms);
    const npm = this.deps.metrics.npm;
    npm.numPolicies.set(this.known.NetworkPolicy.size);
    if (change.type === 'delete') return this.deps.events.forget(change.object);
    const diagnostics = this.deps.compiler.policyDiagnostics(objectKey(change.object));
    this.deps.events.note(change.object, diagnostics);
    // A policy that cannot be honoured in full counts as a failed add, so NPM's alert on
    // npm_add_policy_exec_time_count{had_error="true"} fires for it.
    const failed = labels.had_error === 'true' || diagnostics.length > 0;
    npm.addPolicyExecTime.observe({ had_error: String(failed) }, ms);
  }

  private trackNode(change: Extract<ClusterChange, { kind: 'Node' }>): void {
    const name = change.object.metadata!.name!;
    if (change.type === 'delete') this.nodeUids.delete(name);
    else this.nodeUids.set(name, change.object.metadata?.uid ?? '');
  }
}
