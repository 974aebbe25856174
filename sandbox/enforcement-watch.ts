// Watches every CompiledPolicySet, so a waiter learns the moment the last agent's status arrives.
// Polling a LIST instead added up to one interval of error to every measurement, and each LIST
// (every spec, every 25 ms) took CPU from the apiserver and agents whose latency it was measuring.
// Status says which generation an agent enforces, not which members of the shared sets it names
// (those change without a status write): for them each agent's /enforced answer is held until its
// digest moves (agent/enforced-route.ts), so a change of members only is waited for the same way.
import { CustomObjectsApi, type KubeConfig, type KubernetesListObject } from '@kubernetes/client-node';
import { enforcedDigest } from '../crds/enforced-digest.ts';
import { CPS_GROUP, CPS_PLURAL, CPS_VERSION, type CompiledPolicySet, type CompiledPolicySetSpec } from '../crds/types.ts';
import { ResilientInformer } from '../runtime/informer.ts';
import type { Logger } from '../runtime/log.ts';

export class EnforcementWatch {
  private readonly informer: ResilientInformer<CompiledPolicySet>;
  private readonly waiters = new Set<() => void>();

  /** Each node's agent port for /enforced; a node without one is judged on its status alone. */
  private readonly agentPorts: () => Map<string, number | undefined>;

  constructor(kc: KubeConfig, log: Logger, agentPorts: () => Map<string, number | undefined>) {
    this.agentPorts = agentPorts;
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
   * spec's content hash, its agent reports that hash applied, and the agent holds the expected
   * members of every set; rejects naming the laggards on timeout.
   */
  async until(expected: Map<string, CompiledPolicySetSpec>, timeoutMs: number): Promise<number> {
    const started = performance.now();
    const hashes = new Map([...expected].map(([node, spec]) => [node, spec.contentHash]));
    const ports = this.agentPorts();
    // Side by side: an agent's members are in before its status write lands, so this costs no time of its own.
    const [, ...late] = await Promise.all([
      this.statusReports(hashes, timeoutMs),
      ...[...expected].map(([node, spec]) => {
        const port = ports.get(node);
        return port === undefined ? undefined : membersIn(node, port, enforcedDigest(spec), started + timeoutMs);
      }),
    ]);
    const lagging = late.filter((l) => l !== undefined);
    if (lagging.length) throw new Error(`not enforced after ${timeoutMs} ms: ${lagging.join('; ')}`);
    return performance.now() - started;
  }

  private statusReports(expected: Map<string, string>, timeoutMs: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const done = (finish: () => void) => {
        this.waiters.delete(check);
        clearTimeout(timer);
        finish();
      };
      const check = () => {
        if (lagging(this.informer.items(), expected).length === 0) done(resolve);
      };
      const timer = setTimeout(() => done(() => reject(new Error(`not enforced after ${timeoutMs} ms: ${lagging(this.informer.items(), expected).join('; ')}`))), timeoutMs);
      this.waiters.add(check);
      check();
    });
  }
}

/** Undefined once the agent on `port` enforces `digest`; why not when the deadline passes first. */
async function membersIn(node: string, port: number, digest: string, deadline: number): Promise<string | undefined> {
  let seen: string | null = null;
  for (;;) {
    const waitMs = Math.round(deadline - performance.now());
    const query = seen === null ? '' : `?unlike=${encodeURIComponent(seen)}&waitMs=${Math.max(0, waitMs)}`;
    const answer = await (await fetch(`http://127.0.0.1:${port}/enforced${query}`)).json() as { digest: string | null };
    if (answer.digest === digest) return undefined;
    if (waitMs <= 0) return `${node}: agent enforces the expected rules, not yet the expected members of its shared sets`;
    seen = answer.digest;
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
