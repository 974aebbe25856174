// Where explain and show get the cluster and the CompiledPolicySets from: manifests compiled here
// (-f DIR), or a live cluster's objects and the nodes' CompiledPolicySets as the operator wrote them.
import type { KubeConfig } from '@kubernetes/client-node';
import type { CompiledPolicySet, CompiledPolicySetSpec } from '../crds/types.ts';
import type { ClusterSnapshot } from '../model/cluster.ts';
import { loadManifests, ManifestError } from '../model/manifests.ts';
import { PolicyCompiler } from '../operator/compile/compiler.ts';
import { resolveEndpoint } from './endpoints.ts';
import { InspectError } from './errors.ts';
import type { NodeEnforcement } from './explain.ts';
import { listCps, readCps, readNodeNames, readSnapshot } from './kube.ts';
import { enforcementOf } from './status.ts';

export interface ClusterView {
  origin: 'manifests' | 'cluster';
  snapshot: ClusterSnapshot;
  specs: Map<string, CompiledPolicySetSpec>;
  enforcement: Map<string, NodeEnforcement>;
  /** Manifest documents that are not one of the four kinds read. */
  ignored: string[];
}

export function offlineView(paths: string[]): ClusterView {
  try {
    const { snapshot, ignored } = loadManifests(paths);
    return { origin: 'manifests', snapshot, specs: PolicyCompiler.compile(snapshot), enforcement: new Map(), ignored };
  } catch (e) {
    if (e instanceof ManifestError) throw new InspectError(e.message);
    throw e;
  }
}

/** The live cluster, with the CompiledPolicySets of the nodes the two endpoints run on. */
export async function liveExplainView(kc: KubeConfig, from: string, to: string): Promise<ClusterView> {
  const snapshot = await readSnapshot(kc);
  const nodes = [...new Set([resolveEndpoint(snapshot, from, '--from'), resolveEndpoint(snapshot, to, '--to')]
    .filter((e) => e.enforceable && e.node).map((e) => e.node!))];
  const found = (await Promise.all(nodes.map((n) => readCps(kc, n)))).filter((c): c is CompiledPolicySet => !!c);
  return { origin: 'cluster', snapshot, specs: new Map(found.map((c) => [c.metadata.name, c.spec])), enforcement: enforcementWithFreshness(snapshot, found), ignored: [] };
}

/** Each CompiledPolicySet's status, and whether its spec still equals a compile of the cluster as read now. */
export function enforcementWithFreshness(snapshot: ClusterSnapshot, sets: CompiledPolicySet[]): Map<string, NodeEnforcement> {
  const compiler = new PolicyCompiler();
  compiler.load(snapshot);
  compiler.recompile(sets.map((c) => c.metadata.name));
  return new Map(sets.map((c) => {
    const e = enforcementOf(c);
    const fresh = compiler.nodeSpec(c.metadata.name);
    e.operatorCurrent = fresh !== undefined && fresh.contentHash === c.spec.contentHash;
    return [c.metadata.name, e];
  }));
}

/** One node's CompiledPolicySet from the cluster, or an error naming the nodes there are. */
export async function liveCps(kc: KubeConfig, node: string): Promise<CompiledPolicySet> {
  const found = await readCps(kc, node);
  if (found) return found;
  const nodes = await readNodeNames(kc);
  if (!nodes.includes(node)) {
    const withCps = (await listCps(kc)).map((c) => c.metadata.name);
    throw new InspectError(`no node ${node}; nodes: ${nodes.sort().join(', ') || 'none'}${withCps.some((n) => !nodes.includes(n)) ? `; CompiledPolicySets: ${withCps.sort().join(', ')}` : ''}`);
  }
  throw new InspectError(`no CompiledPolicySet for node ${node}: the operator has not compiled it yet; check that the Fencer operator is running (it leads through a Lease in kube-system; its logs say why it did not write)`);
}

export function offlineSpec(view: ClusterView, node: string): CompiledPolicySetSpec {
  const spec = view.specs.get(node);
  if (spec) return spec;
  throw new InspectError(`no node ${node} in the manifests; nodes: ${[...view.specs.keys()].join(', ') || 'none (add Node manifests with their podCIDR)'}`);
}
