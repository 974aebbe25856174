// The agent's only API traffic: watch its own CompiledPolicySet (a field selector on the name), the
// AddressSet shards labelled for its node or its node's bucket (crds/consumers.ts), and write its own
// object's status. It needs no pods, namespaces or policies.
import { ASET_PLURAL, type AddressSet } from '../crds/address-set.ts';
import { agentSetSelectors } from '../crds/consumers.ts';
import { CPS_GROUP, CPS_PLURAL, CPS_VERSION, type CompiledPolicySet, type CompiledPolicySetStatus } from '../crds/types.ts';
import type { Logger } from '../runtime/log.ts';
import { ListWatcher } from './kube/list-watch.ts';
import { KubeApiError, type KubeTransport } from './kube/transport.ts';
import type { StatusWriter } from './node-agent.ts';
import { mergePatchFor } from './status-patch.ts';

const CPS_PATH = `/apis/${CPS_GROUP}/${CPS_VERSION}/${CPS_PLURAL}`;
const ASET_PATH = `/apis/${CPS_GROUP}/${CPS_VERSION}/${ASET_PLURAL}`;
// Each list is a read from etcd; three watches an agent at a thousand nodes every 5 minutes were
// 10 lists a second for nothing. Watches resume from their version and dead ones are noticed by
// their silence, so the relist is only a backstop (docs/decisions.md 15).
const SAFETY_RELIST_MS = 30 * 60_000;

export function ownCpsInformer(transport: KubeTransport, nodeName: string, log: Logger, relistMs = SAFETY_RELIST_MS): ListWatcher<CompiledPolicySet> {
  return new ListWatcher<CompiledPolicySet>({ name: 'compiledpolicyset', transport, path: CPS_PATH, fieldSelector: `metadata.name=${nodeName}`, relistMs, log });
}

/** One watch per consumer label that can name this node; the apiserver does the selecting. */
export function sharedSetInformers(transport: KubeTransport, nodeName: string, log: Logger, relistMs = SAFETY_RELIST_MS): Array<{ selector: string; informer: ListWatcher<AddressSet> }> {
  return agentSetSelectors(nodeName).map((labelSelector) => ({
    selector: labelSelector,
    informer: new ListWatcher<AddressSet>({ name: `addresssets(${labelSelector})`, transport, path: ASET_PATH, labelSelector, relistMs, log }),
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
  private readonly transport: KubeTransport;

  constructor(transport: KubeTransport) {
    this.transport = transport;
  }

  async writeStatus(cps: CompiledPolicySet, status: CompiledPolicySetStatus): Promise<boolean> {
    try {
      if (!cps.metadata.resourceVersion) throw new Error(`CompiledPolicySet ${cps.metadata.name} has no resourceVersion to write status onto`);
      const body = { metadata: { resourceVersion: cps.metadata.resourceVersion }, status: mergePatchFor(cps.status, status as Record<string, unknown>) };
      await this.transport.request('PATCH', `${CPS_PATH}/${encodeURIComponent(cps.metadata.name)}/status`, { body, contentType: 'application/merge-patch+json' });
      return true;
    } catch (e) {
      if (e instanceof KubeApiError && e.code === 409) return false;
      throw e;
    }
  }
}
