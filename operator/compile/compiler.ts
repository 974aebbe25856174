// The compiler's entry points: a full compile of a snapshot, and incremental updates that recompile
// only the nodes one changed object can affect. Pure in-memory state; no I/O.
import type { CompiledPolicySetSpec } from '../../crds/types.ts';
import type { ClusterSnapshot, V1Namespace, V1NetworkPolicy, V1Node, V1Pod } from '../../model/cluster.ts';
import { objectKey, podAddress } from '../../model/cluster.ts';
import { ClusterIndex } from './cluster-index.ts';
import { assembleSpec, buildNodeStructure, type NodeStructure } from './compile-node.ts';
import { SetMembership } from './members.ts';
import { normalizePolicy } from './policy.ts';

export type ClusterChange =
  | { kind: 'Namespace'; type: 'upsert' | 'delete'; object: V1Namespace }
  | { kind: 'Pod'; type: 'upsert' | 'delete'; object: V1Pod }
  | { kind: 'Node'; type: 'upsert' | 'delete'; object: V1Node }
  | { kind: 'NetworkPolicy'; type: 'upsert' | 'delete'; object: V1NetworkPolicy };

/** A node's new spec, or undefined when the node is gone and its CompiledPolicySet should be too. */
export type CompileResult = Map<string, CompiledPolicySetSpec | undefined>;

export class PolicyCompiler {
  private readonly index = new ClusterIndex();
  private readonly membership = new SetMembership(this.index);
  private readonly specs = new Map<string, CompiledPolicySetSpec>();
  private readonly setNodes = new Map<string, Set<string>>();
  private readonly nodeSets = new Map<string, string[]>();
  private readonly structures = new Map<string, NodeStructure>();
  /** Nodes whose local pods, policies or node object changed: their structure must be rebuilt. */
  private readonly structureDirty = new Set<string>();

  static compile(snapshot: ClusterSnapshot): Map<string, CompiledPolicySetSpec> {
    const compiler = new PolicyCompiler();
    compiler.load(snapshot);
    compiler.recompile(compiler.nodeNames());
    return compiler.current();
  }

  load(snapshot: ClusterSnapshot): void {
    for (const ns of snapshot.namespaces) this.index.namespaces.set(ns.metadata!.name!, ns);
    for (const node of snapshot.nodes) this.index.nodes.set(node.metadata!.name!, node);
    for (const pod of snapshot.pods) this.index.setPod(pod);
    for (const policy of snapshot.policies) this.index.setPolicy(normalizePolicy(policy));
  }

  nodeNames(): string[] {
    return [...this.index.nodes.keys()];
  }

  current(): Map<string, CompiledPolicySetSpec> {
    return new Map([...this.specs.entries()].sort(([a], [b]) => (a < b ? -1 : 1)));
  }

  spec(node: string): CompiledPolicySetSpec | undefined {
    return this.specs.get(node);
  }

  /** Diagnostics of one policy, for reporting on the NetworkPolicy itself. */
  policyDiagnostics(key: string): string[] {
    return this.index.policies.get(key)?.diagnostics ?? [];
  }

  /** Applies one change and recompiles what it touches; returns the nodes whose spec changed. */
  update(change: ClusterChange): CompileResult {
    return this.recompile(this.applyChange(change));
  }

  /** Records one change; returns the nodes whose output it may change (to coalesce before recompiling). */
  applyChange(change: ClusterChange): Set<string> {
    switch (change.kind) {
      case 'Namespace': return this.applyNamespace(change.type, change.object);
      case 'Pod': return this.applyPod(change.type, change.object);
      case 'Node': return this.applyNode(change.type, change.object);
      case 'NetworkPolicy': return this.applyPolicy(change.type, change.object);
    }
  }

  /** Recompiles the nodes; returns those whose spec changed (undefined: the node is gone). */
  recompile(nodes: Iterable<string>): CompileResult {
    const changed: CompileResult = new Map();
    for (const node of [...new Set(nodes)].sort()) {
      const before = this.specs.get(node);
      if (!this.index.nodes.has(node)) {
        this.forgetNode(node);
        if (before) changed.set(node, undefined);
        continue;
      }
      let structure = this.structures.get(node);
      if (!structure || this.structureDirty.has(node)) {
        structure = buildNodeStructure(node, this.index, this.membership);
        this.structures.set(node, structure);
        this.trackSets(node, structure.sharedSets);
        this.structureDirty.delete(node);
      }
      const after = assembleSpec(structure, this.membership);
      if (before?.contentHash !== after.contentHash) changed.set(node, after);
      this.specs.set(node, after);
    }
    this.membership.retainOnly(new Set(this.setNodes.keys()));
    return changed;
  }

  private applyNamespace(type: string, ns: V1Namespace): Set<string> {
    const name = ns.metadata!.name!;
    const before = this.index.namespaceLabels(name);
    if (type === 'delete') this.index.namespaces.delete(name);
    else this.index.namespaces.set(name, ns);
    return this.nodesUsing(this.membership.invalidateNamespace(name, before, this.index.namespaceLabels(name)));
  }

  private applyPod(type: string, pod: V1Pod): Set<string> {
    const before = type === 'delete' ? this.index.deletePod(objectKey(pod)) : this.index.setPod(pod);
    const after = type === 'delete' ? undefined : pod;
    if (fingerprint(before) === fingerprint(after)) return new Set();
    const dirty = this.nodesUsing(this.membership.invalidatePod(before, after));
    for (const p of [before, after]) if (p?.spec?.nodeName) this.markStructure(dirty, p.spec.nodeName);
    return dirty;
  }

  private applyNode(type: string, node: V1Node): Set<string> {
    const name = node.metadata!.name!;
    if (type === 'delete') this.index.nodes.delete(name);
    else this.index.nodes.set(name, node);
    return this.markStructure(new Set(), name);
  }

  private applyPolicy(type: string, policy: V1NetworkPolicy): Set<string> {
    const normalized = normalizePolicy(policy);
    if (type === 'delete') this.index.deletePolicy(normalized.key);
    else this.index.setPolicy(normalized);
    const dirty = new Set<string>();
    for (const node of this.index.nodesWithPodsIn(normalized.namespace)) this.markStructure(dirty, node);
    return dirty;
  }

  private markStructure(dirty: Set<string>, node: string): Set<string> {
    this.structureDirty.add(node);
    dirty.add(node);
    return dirty;
  }

  private nodesUsing(setIds: string[]): Set<string> {
    const out = new Set<string>();
    for (const id of setIds) for (const n of this.setNodes.get(id) ?? []) out.add(n);
    return out;
  }

  private trackSets(node: string, ids: string[]): void {
    this.forgetSets(node);
    this.nodeSets.set(node, ids);
    for (const id of ids) {
      let s = this.setNodes.get(id);
      if (!s) this.setNodes.set(id, (s = new Set()));
      s.add(node);
    }
  }

  private forgetNode(node: string): void {
    this.forgetSets(node);
    this.specs.delete(node);
    this.structures.delete(node);
    this.structureDirty.delete(node);
  }

  private forgetSets(node: string): void {
    for (const id of this.nodeSets.get(node) ?? []) {
      const s = this.setNodes.get(id);
      s?.delete(node);
      if (s?.size === 0) this.setNodes.delete(id);
    }
    this.nodeSets.delete(node);
  }
}

/** The parts of a pod the compiler reads; status heartbeats that leave them alone cost nothing. */
function fingerprint(pod: V1Pod | undefined): string {
  if (!pod) return '';
  return JSON.stringify([
    pod.metadata?.namespace, pod.metadata?.name, pod.metadata?.labels ?? {}, pod.spec?.nodeName, podAddress(pod) ?? null,
    (pod.spec?.containers ?? []).map((c) => c.ports ?? []),
  ]);
}
