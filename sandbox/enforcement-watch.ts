// Watches every CompiledPolicySet, so a waiter learns the moment the last agent's status arrives.
// Polling a LIST instead added up to one interval of error to every measurement, and each LIST
// (every spec, every 25 ms) took CPU from the apiserver and agents whose latency it was measuring.
import { CustomObjectsApi, type KubeConfig, type KubernetesListObject } from '@kubernetes/client-node';
import { CPS_GROUP, CPS_PLURAL, CPS_VERSION, type CompiledPolicySet } from '../crds/types.ts';
import { ResilientInformer } from '../runtime/informer.ts';
import type { Logger } from '../runtime/log.ts';

export class EnforcementWatch {
  private readonly informer: ResilientInformer<CompiledPolicySet>;
  private readonly waiters = new Set<() => void>();

  constructor(kc: KubeConfig, log: Logger) {
    const custom = kc.makeApiClient(CustomObjectsApi);
    const api = { group: CPS_GROUP, version: CPS_VERSION, plural: CPS_PLURAL };
    this.informer = new ResilientInformer<CompiledPolicySet>({
      name: 'sandbox-compiledpolicysets',
      kc,
      path: `/apis/${CPS_GROUP}/${CPS_VERSION}/${CPS_PLURAL}`,
      list: async () => (await custom.listClusterCustomObject(api)) as KubernetesListObject<CompiledPolicySet>,
      relistMs: 0,
      log,
    });
    this.informer.onChange(() => {
      for (const wake of [...this.waiters]) wake();
    });
  }

  start(): Promise<void> {
    return this.informer.start();
  }

  stop(): Promise<void> {
    return this.informer.stop();
  }

  /**
   * Resolves with the milliseconds it took once every node's CompiledPolicySet carries the expected
   * content hash and its agent reports that hash applied; rejects naming the laggards on timeout.
   */
  until(expected: Map<string, string>, timeoutMs: number): Promise<number> {
    const started = performance.now();
    return new Promise<number>((resolve, reject) => {
      const done = (finish: () => void) => {
        this.waiters.delete(check);
        clearTimeout(timer);
        finish();
      };
      const check = () => {
        if (lagging(this.informer.items(), expected).length === 0) done(() => resolve(performance.now() - started));
      };
      const timer = setTimeout(() => done(() => reject(new Error(`not enforced after ${timeoutMs} ms: ${lagging(this.informer.items(), expected).join('; ')}`))), timeoutMs);
      this.waiters.add(check);
      check();
    });
  }
}

/** Why each node does not enforce its expected hash yet; empty when all do. */
export function lagging(sets: CompiledPolicySet[], expected: Map<string, string>): string[] {
  const byNode = new Map(sets.map((c) => [c.metadata.name, c]));
  return [...expected].flatMap(([node, hash]) => {
    const cps = byNode.get(node);
    if (!cps) return [`${node}: no CompiledPolicySet yet`];
    if (cps.spec.contentHash !== hash) return [`${node}: operator wrote ${cps.spec.contentHash.slice(7, 19)}, expected ${hash.slice(7, 19)}`];
    if (cps.status?.appliedHash !== hash) return [`${node}: agent enforces ${cps.status?.appliedHash?.slice(7, 19) ?? 'nothing'}${degraded(cps)}`];
    return [];
  });
}

function degraded(cps: CompiledPolicySet): string {
  const d = cps.status?.conditions?.find((c) => c.type === 'Degraded' && c.status === 'True');
  return d ? ` (Degraded: ${d.message})` : '';
}
