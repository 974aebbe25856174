// The compiler's entry points: a full compile of a snapshot, and incremental updates that recompile
// only the nodes one changed object can affect. A node's spec names the cluster-wide sets it uses;
// their members and consumers are kept here per set, and a change to them is reported per set, not
// per node. Pure in-memory state; no I/O.
import type { CompiledPolicySetSpec, IPSetKind } from '../../crds/types.ts';
import type { ClusterSnapshot, V1Namespace, V1NetworkPolicy, V1Node, V1Pod } from '../../model/cluster.ts';
import { objectKey, podAddress } from '../../model/cluster.ts';
import { ClusterIndex } from './cluster-index.ts';
import { buildNodeStructure, fullSpec, nodeSpec, type NodeStructure } from './compile-node.ts';
import { setKind, setOrigin, SetMembership } from './members.ts';
import { normalizePolicy } from './policy.ts';

export type ClusterChange =
  | { kind: 'Namespace'; type: 'upsert' | 'delete'; object: V1Namespace }
  | { kind: 'Pod'; type: 'upsert' | 'delete'; object: V1Pod }
  | { kind: 'Node'; type: 'upsert' | 'delete'; object: V1Node }
  | { kind: 'NetworkPolicy'; type: 'upsert' | 'delete'; object: V1NetworkPolicy };

/** A node's new spec, or undefined when the node is gone and its CompiledPolicySet should be too. */
export type CompileResult = Map<string, CompiledPolicySetSpec | undefined>;

/** A cluster-wide set as the operator writes it: its members and the nodes whose spec names it. */
export interface SharedSet {
  name: string;
  kind: IPSetKind;
  origin: string;
  /** Sorted; the same array while the members stay the same. */
  members: string[];
  /** Sorted node names. */
  nodes: string[];
}

export class PolicyCompiler {
  private readonly index = new ClusterIndex();
  private readonly membership = new SetMembership(this.index);
  private readonly specs = new Map<string, CompiledPolicySetSpec>();
  private readonly setNodes = new Map<string, Set<string>>();
  private readonly nodeSets = new Map<string, string[]>();
  private readonly structures = new Map<string, NodeStructure>();
  /** Nodes whose local pods, policies or node object changed: their structure must be rebuilt. */
  private readonly structureDirty = new Set<string>();
  /** Shared sets whose members or consumers may have changed since the last takeSetChanges(). */
  private readonly setsDirty = new Set<string>();

  /** What each node enforces, every set in full (the agent's view; for tools and tests). */
  static compile(snapshot: ClusterSnapshot): Map<string, CompiledPolicySetSpec> {
    return PolicyCompiler.loaded(snapshot).current();
  }

  /** A compiler holding the snapshot, every node compiled. */
  static loaded(snapshot: ClusterSnapshot): PolicyCompiler {
    const compiler = new PolicyCompiler();
    compiler.load(snapshot);
    compiler.recompile(compiler.nodeNames());
    return compiler;
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

  /** Every node's full spec (shared sets filled in), by node name. */
  current(): Map<string, CompiledPolicySetSpec> {
    return new Map([...this.specs.keys()].sort().map((node) => [node, this.spec(node)!]));
  }

  /** What the node enforces, every set in full. */
  spec(node: string): CompiledPolicySetSpec | undefined {
    const spec = this.specs.get(node);
    return spec && fullSpec(spec, this.membership);
  }

  /** What the node's CompiledPolicySet carries: its own sets, and the shared ones by name. */
  nodeSpec(node: string): CompiledPolicySetSpec | undefined {
    return this.specs.get(node);
  }

  /** Every node's CompiledPolicySet spec, by node name. */
  nodeSpecs(): Map<string, CompiledPolicySetSpec> {
    return new Map([...this.specs.entries()].sort(([a], [b]) => (a < b ? -1 : 1)));
  }

  /** A shared set some node uses, undefined when none does. */
  sharedSet(id: string): SharedSet | undefined {
    const nodes = this.setNodes.get(id);
    const def = this.membership.definition(id);
    if (!nodes?.size || !def) return undefined;
    return { name: id, kind: setKind(def), origin: setOrigin(def), members: this.membership.members(id), nodes: [...nodes].sort() };
  }

  sharedSetIds(): string[] {
    return [...this.setNodes.keys()].sort();
  }

  /** Ids of the shared sets whose members or consumers may have changed since the last call (or that are gone). */
  takeSetChanges(): string[] {
    const ids = [...this.setsDirty].sort();
    this.setsDirty.clear();
    return ids;
  }

  hasSetChanges(): boolean {
    return this.setsDirty.size > 0;
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
      const after = nodeSpec(structure, this.membership);
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
    this.markSets(this.membership.invalidateNamespace(name, before, this.index.namespaceLabels(name)));
    return new Set();
  }

  private applyPod(type: string, pod: V1Pod): Set<string> {
    const before = type === 'delete' ? this.index.deletePod(objectKey(pod)) : this.index.setPod(pod);
    const after = type === 'delete' ? undefined : pod;
    if (fingerprint(before) === fingerprint(after)) return new Set();
    this.markSets(this.membership.invalidatePod(before, after));
    const dirty = new Set<string>();
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

  /** Shared sets only matter once some node uses them; the others have nothing to write. */
  private markSets(ids: string[]): void {
    for (const id of ids) if (this.setNodes.has(id)) this.setsDirty.add(id);
  }

  private trackSets(node: string, ids: string[]): void {
    const before = new Set(this.nodeSets.get(node) ?? []);
    this.forgetSets(node);
    this.nodeSets.set(node, ids);
    for (const id of ids) {
      let s = this.setNodes.get(id);
      if (!s) this.setNodes.set(id, (s = new Set()));
      s.add(node);
      if (!before.delete(id)) this.setsDirty.add(id);
    }
    for (const id of before) this.setsDirty.add(id);
  }

  private forgetNode(node: string): void {
    for (const id of this.nodeSets.get(node) ?? []) this.setsDirty.add(id);
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
