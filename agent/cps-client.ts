// The agent's only API traffic: watch its own CompiledPolicySet (a field selector on the name), the
// AddressSet shards labelled for its node or its node's bucket (crds/consumers.ts), and write its own
// object's status. It needs no pods, namespaces or policies.
import { ApiException, CustomObjectsApi, KubeConfig, PatchStrategy, setHeaderOptions, type KubernetesListObject, type KubernetesObject } from '@kubernetes/client-node';
import { ASET_PLURAL, type AddressSet } from '../crds/address-set.ts';
import { agentSetSelectors } from '../crds/consumers.ts';
import { CPS_GROUP, CPS_PLURAL, CPS_VERSION, type CompiledPolicySet, type CompiledPolicySetStatus } from '../crds/types.ts';
import { ResilientInformer } from '../runtime/informer.ts';
import type { Logger } from '../runtime/log.ts';
import type { StatusWriter } from './node-agent.ts';
import { mergePatchFor } from './status-patch.ts';

const api = { group: CPS_GROUP, version: CPS_VERSION, plural: CPS_PLURAL };

export type AddressSetObject = AddressSet & KubernetesObject;
const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

export function ownCpsInformer(kc: KubeConfig, nodeName: string, log: Logger, relistMs = 300_000): ResilientInformer<CompiledPolicySet> {
  const custom = kc.makeApiClient(CustomObjectsApi);
  const fieldSelector = `metadata.name=${nodeName}`;
  return new ResilientInformer<CompiledPolicySet>({
    name: 'compiledpolicyset',
    kc,
    path: `/apis/${CPS_GROUP}/${CPS_VERSION}/${CPS_PLURAL}`,
    list: async () => (await custom.listClusterCustomObject({ ...api, fieldSelector })) as KubernetesListObject<CompiledPolicySet>,
    fieldSelector,
    relistMs,
    log,
  });
}

/** One watch per consumer label that can name this node; the apiserver does the selecting. */
export function sharedSetInformers(kc: KubeConfig, nodeName: string, log: Logger, relistMs = 300_000): Array<{ selector: string; informer: ResilientInformer<AddressSetObject> }> {
  const custom = kc.makeApiClient(CustomObjectsApi);
  return agentSetSelectors(nodeName).map((labelSelector) => ({
    selector: labelSelector,
    informer: new ResilientInformer<AddressSetObject>({
      name: `addresssets(${labelSelector})`,
      kc,
      path: `/apis/${CPS_GROUP}/${CPS_VERSION}/${ASET_PLURAL}`,
      list: async () => (await custom.listClusterCustomObject({ group: CPS_GROUP, version: CPS_VERSION, plural: ASET_PLURAL, labelSelector })) as KubernetesListObject<AddressSetObject>,
      labelSelector,
      relistMs,
      log,
    }),
  }));
}

/**
 * Writes status onto exactly the object version it describes: a merge patch of the status subresource
 * that carries the version's resourceVersion, which the apiserver takes as a precondition. If the
 * object changed meanwhile the write fails with 409 and is dropped, since the change arrives as a new
 * event and the status is recomputed against it. It never lands on a newer generation, and only the
 * status travels (an update would send the whole spec back on every apply).
 */
export class CpsStatusWriter implements StatusWriter {
  private readonly custom: CustomObjectsApi;

  constructor(kc: KubeConfig) {
    this.custom = kc.makeApiClient(CustomObjectsApi);
  }

  async writeStatus(cps: CompiledPolicySet, status: CompiledPolicySetStatus): Promise<boolean> {
    try {
      if (!cps.metadata.resourceVersion) throw new Error(`CompiledPolicySet ${cps.metadata.name} has no resourceVersion to write status onto`);
      const body = { metadata: { resourceVersion: cps.metadata.resourceVersion }, status: mergePatchFor(cps.status, status as Record<string, unknown>) };
      await this.custom.patchClusterCustomObjectStatus({ ...api, name: cps.metadata.name, body }, mergePatch);
      return true;
    } catch (e) {
      if (e instanceof ApiException && e.code === 409) return false;
      throw e;
    }
  }
}
