// Shared by the fault tests: a sandbox of two nodes and a handful of pods, the cluster state the
// apiserver holds compiled into what every node must enforce, and waits on the agents' reports.
import { ApiException, CoreV1Api, CustomObjectsApi, NetworkingV1Api, type KubeConfig, type V1NetworkPolicy } from '@kubernetes/client-node';
import { ASET_PLURAL, type AddressSet } from '../../crds/address-set.ts';
import { expandSpec } from '../../crds/codec.ts';
import { agentSetSelectors } from '../../crds/consumers.ts';
import { membersFromShards, resolveSharedSets } from '../../crds/resolve.ts';
import { CPS_GROUP, CPS_PLURAL, CPS_VERSION, type CompiledPolicySet, type CompiledPolicySetSpec } from '../../crds/types.ts';
import type { ClusterSnapshot } from '../../model/cluster.ts';
import { PolicyCompiler } from '../../operator/compile/compiler.ts';
import { oracleAllows } from '../../oracle/oracle.ts';
import type { Sandbox, SandboxPod } from '../../sandbox/sandbox.ts';
import type { LoopFlow } from './probe-loop.ts';

export const cpsApi = { group: CPS_GROUP, version: CPS_VERSION, plural: CPS_PLURAL };
export const asetApi = { group: CPS_GROUP, version: CPS_VERSION, plural: ASET_PLURAL };

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export async function waitFor<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 30_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
      last = undefined;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await sleep(everyMs);
  }
}

export async function snapshot(kc: KubeConfig): Promise<ClusterSnapshot> {
  const core = kc.makeApiClient(CoreV1Api);
  const net = kc.makeApiClient(NetworkingV1Api);
  const [namespaces, pods, nodes, policies] = await Promise.all([core.listNamespace(), core.listPodForAllNamespaces(), core.listNode(), net.listNetworkPolicyForAllNamespaces()]);
  return { namespaces: namespaces.items, pods: pods.items, nodes: nodes.items, policies: policies.items };
}

/** What every node must enforce for the cluster as the apiserver holds it now. */
export async function expectedSpecs(kc: KubeConfig): Promise<Map<string, CompiledPolicySetSpec>> {
  return PolicyCompiler.compile(await snapshot(kc));
}

export async function getCps(kc: KubeConfig, name: string): Promise<CompiledPolicySet | undefined> {
  try {
    return (await kc.makeApiClient(CustomObjectsApi).getClusterCustomObject({ ...cpsApi, name })) as CompiledPolicySet;
  } catch (e) {
    if (e instanceof ApiException && e.code === 404) return undefined;
    throw e;
  }
}

/** Why the nodes do not yet enforce what the cluster compiles to, or undefined when they all do. */
export async function lag(kc: KubeConfig, nodes: string[]): Promise<string | undefined> {
  const expected = await expectedSpecs(kc);
  for (const node of nodes) {
    const want = expected.get(node);
    const cps = await getCps(kc, node);
    if (!want) return `${node}: not compiled`;
    if (!cps) return `${node}: no CompiledPolicySet`;
    if (cps.spec.contentHash !== want.contentHash) return `${node}: spec ${cps.spec.contentHash.slice(7, 15)}, compile ${want.contentHash.slice(7, 15)}`;
    if (cps.status?.appliedHash !== want.contentHash || cps.status?.observedGeneration !== cps.metadata.generation) {
      const degraded = cps.status?.conditions?.find((c) => c.type === 'Degraded' && c.status === 'True');
      return `${node}: agent enforces generation ${cps.status?.observedGeneration} of ${cps.metadata.generation}${degraded ? ` (Degraded: ${degraded.message})` : ''}`;
    }
  }
  return undefined;
}

/** Waits until every node's agent enforces the compile of the cluster as it is now; the ms it took. */
export async function waitConverged(kc: KubeConfig, nodes: string[], timeoutMs = 30_000): Promise<number> {
  const started = performance.now();
  let why: string | undefined;
  try {
    await waitFor('every node to enforce the compile of the cluster', async () => (why = await lag(kc, nodes)) === undefined, timeoutMs, 50);
  } catch (e) {
    throw new Error(`${(e as Error).message} (last: ${why})`);
  }
  return performance.now() - started;
}

/** The AddressSet shards the agent of `node` receives (listed with the agent's own label selectors). */
export async function shardsFor(kc: KubeConfig, node: string): Promise<AddressSet[]> {
  const custom = kc.makeApiClient(CustomObjectsApi);
  const lists = await Promise.all(agentSetSelectors(node).map(async (labelSelector) =>
    ((await custom.listClusterCustomObject({ ...asetApi, labelSelector })) as { items: AddressSet[] }).items));
  return [...new Map(lists.flat().map((o) => [o.metadata.name, o])).values()];
}

/** A CompiledPolicySet's spec, expanded, with its shared sets filled in from these shards; why not, when one is not whole. */
export function resolveWithShards(cps: CompiledPolicySet, shards: readonly AddressSet[]): CompiledPolicySetSpec | string {
  const spec = expandSpec(cps.spec);
  const specs = shards.map((o) => o.spec);
  const resolved = resolveSharedSets(spec, (ref) => {
    const found = membersFromShards(ref, specs);
    return 'missing' in found ? found : { members: found.members };
  });
  return resolved.missing ? `${cps.metadata.name}: shared sets not whole: ${resolved.missing.join('; ')}` : resolved.spec;
}

/**
 * The spec a node enforces now: its CPS, expanded, with the shared sets it names filled in from the
 * AddressSet shards its agent receives (throws while one of them is not whole).
 */
export async function enforcedSpec(kc: KubeConfig, node: string): Promise<CompiledPolicySetSpec> {
  const cps = await getCps(kc, node);
  if (!cps) throw new Error(`no CompiledPolicySet for ${node}`);
  const spec = resolveWithShards(cps, cps.spec.sharedSets?.length ? await shardsFor(kc, node) : []);
  if (typeof spec === 'string') throw new Error(spec);
  return spec;
}

export async function applyPolicy(kc: KubeConfig, policy: V1NetworkPolicy): Promise<void> {
  const net = kc.makeApiClient(NetworkingV1Api);
  const namespace = policy.metadata!.namespace!;
  const name = policy.metadata!.name!;
  const body = toClient(policy);
  try {
    const current = await net.readNamespacedNetworkPolicy({ namespace, name });
    await net.replaceNamespacedNetworkPolicy({ namespace, name, body: { ...body, metadata: { ...body.metadata, resourceVersion: current.metadata?.resourceVersion } } });
  } catch (e) {
    if (!(e instanceof ApiException) || e.code !== 404) throw e;
    await net.createNamespacedNetworkPolicy({ namespace, body });
  }
}

/** client-node serialises an ingress rule's peers from `_from`; a plain `from` would be dropped. */
function toClient(policy: V1NetworkPolicy): V1NetworkPolicy {
  const ingress = policy.spec?.ingress?.map((r) => {
    const { from, ...rest } = r as typeof r & { from?: unknown };
    return from === undefined ? r : { ...rest, _from: from as never };
  });
  return ingress ? { ...policy, spec: { ...policy.spec!, ingress } } : policy;
}

/** Flows between sandbox pods, each expected to be what the oracle says of the cluster now. */
export async function oracleFlows(kc: KubeConfig, sandbox: Sandbox, pairs: Array<[string, string, number]>): Promise<LoopFlow[]> {
  const snap = await snapshot(kc);
  return pairs.map(([from, to, port]) => {
    const src = sandbox.pods.get(from)!;
    const dst = sandbox.pods.get(to)!;
    // A port the destination does not serve is refused whatever the policies say.
    const serves = dst.pod.ports.some((p) => p.port === port && p.protocol === 'TCP');
    const open = serves && oracleAllows(snap, { srcIP: src.pod.ip, dstIP: dst.pod.ip, protocol: 'TCP', port });
    return { name: `${from} → ${to}:${port}`, from: src.handle, to: { ip: dst.pod.ip }, port, expect: open ? 'open' : 'closed' };
  });
}

export function pod(namespace: string, name: string, node: string, ip: string, labels: Record<string, string>, ports: number[] = [80]): SandboxPod {
  return { namespace, name, node, ip, labels, ports: ports.map((port) => ({ port, protocol: 'TCP' as const })) };
}
