// The operator's watches: NetworkPolicies, Pods, Namespaces and Nodes in every namespace, and the
// CompiledPolicySets and AddressSets it manages (label app.kubernetes.io/managed-by=fencer), each a ResilientInformer
// (restart with back-off, safety relist, changes by resourceVersion).
import {
  CoreV1Api,
  CustomObjectsApi,
  NetworkingV1Api,
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
} from '@kubernetes/client-node';
import { ASET_PLURAL, type AddressSet } from '../crds/address-set.ts';
import { CPS_GROUP, CPS_PLURAL, CPS_VERSION, type CompiledPolicySet } from '../crds/types.ts';
import type { V1Namespace, V1NetworkPolicy, V1Node, V1Pod } from '../model/cluster.ts';
import { ResilientInformer } from '../runtime/informer.ts';
import type { Logger } from '../runtime/log.ts';
import { MANAGED_BY_LABEL } from './cps-object.ts';

export const MANAGED_SELECTOR = `${MANAGED_BY_LABEL}=fencer`;

export type CpsObject = CompiledPolicySet & KubernetesObject;

export interface OperatorInformers {
  namespaces: ResilientInformer<V1Namespace>;
  pods: ResilientInformer<V1Pod>;
  nodes: ResilientInformer<V1Node>;
  policies: ResilientInformer<V1NetworkPolicy>;
  cps: ResilientInformer<CpsObject>;
  sets: ResilientInformer<AddressSetObject>;
}

export type AddressSetObject = AddressSet & KubernetesObject;

export function createInformers(kc: KubeConfig, relistMs: number, log: Logger): OperatorInformers {
  const core = kc.makeApiClient(CoreV1Api);
  const networking = kc.makeApiClient(NetworkingV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const common = { kc, relistMs, log };
  return {
    namespaces: new ResilientInformer({ ...common, name: 'namespaces', path: '/api/v1/namespaces', list: () => core.listNamespace() }),
    pods: new ResilientInformer({ ...common, name: 'pods', path: '/api/v1/pods', list: () => core.listPodForAllNamespaces() }),
    nodes: new ResilientInformer({ ...common, name: 'nodes', path: '/api/v1/nodes', list: () => core.listNode() }),
    policies: new ResilientInformer({
      ...common,
      name: 'networkpolicies',
      path: '/apis/networking.k8s.io/v1/networkpolicies',
      list: () => networking.listNetworkPolicyForAllNamespaces(),
    }),
    cps: new ResilientInformer<CpsObject>({
      ...common,
      name: 'compiledpolicysets',
      path: `/apis/${CPS_GROUP}/${CPS_VERSION}/${CPS_PLURAL}`,
      labelSelector: MANAGED_SELECTOR,
      list: () => custom.listClusterCustomObject({ group: CPS_GROUP, version: CPS_VERSION, plural: CPS_PLURAL, labelSelector: MANAGED_SELECTOR }) as Promise<KubernetesListObject<CpsObject>>,
    }),
    sets: new ResilientInformer<AddressSetObject>({
      ...common,
      name: 'addresssets',
      path: `/apis/${CPS_GROUP}/${CPS_VERSION}/${ASET_PLURAL}`,
      labelSelector: MANAGED_SELECTOR,
      list: () => custom.listClusterCustomObject({ group: CPS_GROUP, version: CPS_VERSION, plural: ASET_PLURAL, labelSelector: MANAGED_SELECTOR }) as Promise<KubernetesListObject<AddressSetObject>>,
    }),
  };
}

export function allInformers(informers: OperatorInformers): ResilientInformer<KubernetesObject>[] {
  return Object.values(informers) as ResilientInformer<KubernetesObject>[];
}
