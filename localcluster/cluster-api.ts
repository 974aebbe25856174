// The API clients a tool needs to build and read a cluster (tests, benches, scripts), and the
// snapshot of what the compiler reads from it.
import { CoreV1Api, CustomObjectsApi, NetworkingV1Api, type KubeConfig } from '@kubernetes/client-node';
import type { ClusterSnapshot } from '../model/cluster.ts';
import { kubelet, type Kubelet } from './kubelet.ts';

export interface Kube {
  kc: KubeConfig;
  k: Kubelet;
  core: CoreV1Api;
  net: NetworkingV1Api;
  custom: CustomObjectsApi;
}

export function clusterApi(kc: KubeConfig): Kube {
  return { kc, k: kubelet(kc), core: kc.makeApiClient(CoreV1Api), net: kc.makeApiClient(NetworkingV1Api), custom: kc.makeApiClient(CustomObjectsApi) };
}

/** Everything the apiserver holds of the four kinds the compiler reads. */
export async function clusterSnapshot(api: Kube): Promise<ClusterSnapshot> {
  const [namespaces, pods, nodes, policies] = await Promise.all([
    api.core.listNamespace(),
    api.core.listPodForAllNamespaces(),
    api.core.listNode(),
    api.net.listNetworkPolicyForAllNamespaces(),
  ]);
  return { namespaces: namespaces.items, pods: pods.items, nodes: nodes.items, policies: policies.items };
}
