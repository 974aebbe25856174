// The inspect commands' door to a live cluster: finding a kubeconfig (or saying clearly that there
// is none), reading what explain/show/status need, and turning API failures into actionable errors.
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { ApiException, CoreV1Api, CustomObjectsApi, KubeConfig, NetworkingV1Api } from '@kubernetes/client-node';
import { ASET_PLURAL, type AddressSet, type AddressSetSpec } from '../crds/address-set.ts';
import { expandSpec } from '../crds/codec.ts';
import { agentSetSelectors } from '../crds/consumers.ts';
import { membersFromShards, resolveSharedSets } from '../crds/resolve.ts';
import { CPS_GROUP, CPS_PLURAL, CPS_VERSION, type CompiledPolicySet } from '../crds/types.ts';
import type { ClusterSnapshot } from '../model/cluster.ts';
import { InspectError } from './errors.ts';

const IN_CLUSTER_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';
const NO_KUBECONFIG_HINT = 'pass --kubeconfig FILE, set KUBECONFIG, or create ~/.kube/config (`fencer explain` and `fencer show` also work offline on manifests with -f DIR)';

/** Loads the kubeconfig from --kubeconfig, $KUBECONFIG, ~/.kube/config or the pod's service account, or fails saying which were tried. */
export function inspectKubeConfig(path?: string): KubeConfig {
  const kc = new KubeConfig();
  try {
    if (path) {
      if (!existsSync(path)) throw new InspectError(`kubeconfig ${path}: no such file`);
      kc.loadFromFile(path);
    } else {
      const fromEnv = (process.env.KUBECONFIG ?? '').split(':').filter((p) => p !== '');
      const home = join(homedir(), '.kube', 'config');
      const inCluster = !!process.env.KUBERNETES_SERVICE_HOST && existsSync(IN_CLUSTER_TOKEN);
      if (fromEnv.length > 0 && !fromEnv.some((p) => existsSync(p))) {
        throw new InspectError(`no kubeconfig: KUBECONFIG names ${fromEnv.join(', ')}, and no such file exists; ${NO_KUBECONFIG_HINT}`);
      }
      if (fromEnv.length === 0 && !existsSync(home) && !inCluster) throw new InspectError(`no kubeconfig: ${NO_KUBECONFIG_HINT}`);
      kc.loadFromDefault();
    }
  } catch (e) {
    if (e instanceof InspectError) throw e;
    throw new InspectError(`cannot read the kubeconfig${path ? ` ${path}` : ''}: ${(e as Error).message.split('\n')[0]}`);
  }
  if (!kc.getCurrentCluster()) throw new InspectError(`the kubeconfig${path ? ` ${path}` : ''} has no current context with a cluster: set one with \`kubectl config use-context NAME\``);
  return kc;
}

/** Runs an API read; failures become InspectErrors naming the apiserver, what was read and what to do. */
export async function apiRead<T>(kc: KubeConfig, what: string, read: () => Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (e) {
    throw explainApiError(kc, what, e);
  }
}

export function explainApiError(kc: KubeConfig, what: string, e: unknown): InspectError {
  const server = kc.getCurrentCluster()?.server ?? 'the apiserver';
  if (e instanceof ApiException) {
    const message = statusMessage(e.body);
    switch (e.code) {
      case 401: return new InspectError(`${server} rejected the kubeconfig's credentials (401 Unauthorized) while reading ${what}: refresh or fix the user in the kubeconfig`);
      case 403: return new InspectError(`forbidden to read ${what} (403): ${message || 'no permission'}; the inspect commands need get/list on pods, namespaces, nodes, networkpolicies, compiledpolicysets.fencer.dev and addresssets.fencer.dev`);
      case 404: return new InspectError(`${what}: not found (404) at ${server}${/compiledpolicysets/i.test(what) ? ': is Fencer installed? (the CompiledPolicySet CRD crds/compiledpolicyset.yaml must be applied)' : ''}`);
      default: return new InspectError(`reading ${what} from ${server} failed (HTTP ${e.code}): ${message || e.message.split('\n')[1] || ''}`);
    }
  }
  const err = e as { code?: string; cause?: { code?: string; message?: string }; message?: string };
  const code = err.code ?? err.cause?.code;
  const detail = code ?? err.cause?.message ?? err.message?.split('\n')[0] ?? String(e);
  return new InspectError(`cannot reach the apiserver at ${server} (${detail}) while reading ${what}: is the cluster up, and is the kubeconfig's server address right?`);
}

/** The message of a Kubernetes Status body, which client-node may hand over parsed or as text. */
function statusMessage(body: unknown): string {
  if (typeof body === 'string') {
    try {
      return statusMessage(JSON.parse(body));
    } catch {
      return body.slice(0, 300);
    }
  }
  return (body as { message?: string } | undefined)?.message ?? '';
}

/** Everything the compiler and the oracle read: namespaces, pods, nodes, network policies. */
export async function readSnapshot(kc: KubeConfig): Promise<ClusterSnapshot> {
  const core = kc.makeApiClient(CoreV1Api);
  const net = kc.makeApiClient(NetworkingV1Api);
  const [namespaces, pods, nodes, policies] = await Promise.all([
    apiRead(kc, 'namespaces', () => core.listNamespace()),
    apiRead(kc, 'pods', () => core.listPodForAllNamespaces()),
    apiRead(kc, 'nodes', () => core.listNode()),
    apiRead(kc, 'networkpolicies', () => net.listNetworkPolicyForAllNamespaces()),
  ]);
  return { namespaces: namespaces.items, pods: pods.items, nodes: nodes.items, policies: policies.items };
}

export async function readNodeNames(kc: KubeConfig): Promise<string[]> {
  const core = kc.makeApiClient(CoreV1Api);
  const list = await apiRead(kc, 'nodes', () => core.listNode());
  return list.items.map((n) => n.metadata?.name ?? '?');
}

const cps = { group: CPS_GROUP, version: CPS_VERSION, plural: CPS_PLURAL };

/**
 * One node's CompiledPolicySet with member lists expanded and its shared sets filled in from the
 * AddressSet shards that node's agent receives (the same selectors), or undefined when there is none.
 * A set whose shards are not all there is shown empty, its origin saying so.
 */
export async function readCps(kc: KubeConfig, node: string): Promise<CompiledPolicySet | undefined> {
  const custom = kc.makeApiClient(CustomObjectsApi);
  try {
    const o = (await custom.getClusterCustomObject({ ...cps, name: node })) as CompiledPolicySet;
    const spec = expandSpec(o.spec);
    if (!spec.sharedSets?.length) return { ...o, spec: resolveSharedSets(spec, () => ({ members: [] })).spec! };
    const shards = await readShardsFor(kc, node);
    const resolved = resolveSharedSets({ ...spec, sharedSets: spec.sharedSets.map((ref) => {
      const found = membersFromShards(ref, shards);
      return 'missing' in found ? { ...ref, origin: `${ref.origin} (not whole on the apiserver: ${found.missing})` } : ref;
    }) }, (ref) => {
      const found = membersFromShards(ref, shards);
      return { members: 'missing' in found ? [] : found.members };
    });
    return { ...o, spec: resolved.spec! };
  } catch (e) {
    if (e instanceof ApiException && e.code === 404) {
      // Tell a missing object from a missing CRD.
      await apiRead(kc, 'compiledpolicysets.fencer.dev', () => custom.listClusterCustomObject({ ...cps, limit: 1 }));
      return undefined;
    }
    throw explainApiError(kc, `CompiledPolicySet ${node}`, e);
  }
}

/** The AddressSet shards the agent of `node` receives. */
export async function readShardsFor(kc: KubeConfig, node: string): Promise<AddressSetSpec[]> {
  const custom = kc.makeApiClient(CustomObjectsApi);
  const lists = await Promise.all(agentSetSelectors(node).map((labelSelector) =>
    apiRead(kc, 'addresssets.fencer.dev', () => custom.listClusterCustomObject({ group: CPS_GROUP, version: CPS_VERSION, plural: ASET_PLURAL, labelSelector })) as Promise<{ items: AddressSet[] }>));
  const byName = new Map(lists.flatMap((l) => l.items).map((o) => [o.metadata.name, o.spec]));
  return [...byName.values()];
}

export async function listCps(kc: KubeConfig): Promise<CompiledPolicySet[]> {
  const custom = kc.makeApiClient(CustomObjectsApi);
  const list = (await apiRead(kc, 'compiledpolicysets.fencer.dev', () => custom.listClusterCustomObject({ ...cps }))) as { items: CompiledPolicySet[] };
  return list.items;
}
