// The test bed of the agent fault tests (fault-agent.test.ts for the iptables dataplane,
// fault-agent-nftables.test.ts for nftables): two sandbox nodes whose agents run as processes
// behind a kernel-tool shim, a web pod and its neighbours, and a policy that changes rules and
// members in every generation.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { V1NetworkPolicy } from '@kubernetes/client-node';
import { silentLogger } from '../../runtime/log.ts';
import { resetCluster } from '../../sandbox/reset.ts';
import { Sandbox } from '../../sandbox/sandbox.ts';
import type { Cluster } from '../../localcluster/control-plane.ts';
import { applyPolicy, oracleFlows, pod, sleep, waitConverged, waitFor } from './harness.ts';
import type { LoopFlow } from './probe-loop.ts';
import { metricValue, spawnAgent, type FencerProcess } from './processes.ts';
import { createShim, type Shim } from './shim.ts';

/** Every generation allows client → web:80 and never other → web; ports and the ipBlock change each time (new rules and sets). */
export function webPolicy(namespace: string, g: number): V1NetworkPolicy {
  return {
    apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { namespace, name: 'web' },
    spec: {
      podSelector: { matchLabels: { app: 'web' } },
      ingress: [{
        from: [{ podSelector: { matchLabels: { role: 'client' } } }, { ipBlock: { cidr: `192.0.2.${(g % 250) + 1}/32` } }],
        ports: [{ protocol: 'TCP', port: 80 }, { protocol: 'TCP', port: 8000 + g }, ...(g % 2 ? [{ protocol: 'TCP', port: 81 }] : [])],
      } as never],
    },
  };
}

export interface AgentBedOptions {
  cluster: Cluster;
  namespace: string;
  /** Two node names: the web pod and `other` on the first, `client` and `guest` on the second. */
  nodes: [string, string];
  prefix: string;
  dataplane?: 'iptables' | 'nftables';
}

export class AgentBed {
  readonly opts: AgentBedOptions;
  readonly sandbox: Sandbox;
  readonly shims = new Map<string, Shim>();
  readonly agents = new Map<string, FencerProcess>();
  readonly logs = mkdtempSync(join(tmpdir(), 'fencer-agent-bed-'));
  generation = 0;

  private constructor(opts: AgentBedOptions, sandbox: Sandbox) {
    this.opts = opts;
    this.sandbox = sandbox;
  }

  static async start(opts: AgentBedOptions): Promise<AgentBed> {
    const [first, second] = opts.nodes;
    await resetCluster(opts.cluster.kubeConfig(), new Map([[opts.namespace, {}]]));
    const sandbox = await Sandbox.start({ cluster: opts.cluster, nodes: [{ name: first, podCIDR: '10.244.1.0/24' }, { name: second, podCIDR: '10.244.2.0/24' }], prefix: opts.prefix, log: silentLogger(), agents: 'none' });
    const bed = new AgentBed(opts, sandbox);
    try {
      for (const n of opts.nodes) bed.shims.set(n, createShim());
      const ns = opts.namespace;
      await sandbox.addPod(pod(ns, 'web', first, '10.244.1.10', { app: 'web' }, [80, 81]));
      await sandbox.addPod(pod(ns, 'other', first, '10.244.1.11', { role: 'other' }));
      await sandbox.addPod(pod(ns, 'client', second, '10.244.2.10', { role: 'client' }));
      await sandbox.addPod(pod(ns, 'guest', second, '10.244.2.11', { role: 'visitor' }));
      await bed.nextGeneration();
      for (const n of opts.nodes) await bed.startAgent(n);
      await waitConverged(sandbox.kc, opts.nodes);
      return bed;
    } catch (e) {
      await bed.stop();
      throw e;
    }
  }

  async startAgent(node: string): Promise<FencerProcess> {
    const p = await spawnAgent({
      node, netns: this.sandbox.topology.nodeNetns(node), kubeconfig: this.opts.cluster.kubeconfigPath,
      logFile: join(this.logs, `agent-${node}.log`), path: this.shims.get(node)!.path(), dataplane: this.opts.dataplane,
    });
    this.agents.set(node, p);
    return p;
  }

  /** A new policy generation, and the guest moving in or out of the allowed peers: a member change in the same apply as a rule change. */
  async nextGeneration(): Promise<void> {
    this.generation++;
    await applyPolicy(this.sandbox.kc, webPolicy(this.opts.namespace, this.generation));
    await this.sandbox.kubelet.labelPod(this.opts.namespace, 'guest', { role: this.generation % 2 ? 'client' : 'visitor' });
  }

  /** The flows a probe loop watches while generations change: what every generation allows or denies, and what changes. */
  flows(): LoopFlow[] {
    const get = (name: string) => this.sandbox.pods.get(`${this.opts.namespace}/${name}`)!.handle;
    const [web, client, other, guest] = ['web', 'client', 'other', 'guest'].map(get);
    return [
      { name: 'client → web:80 (every generation allows)', from: client, to: web, port: 80, expect: 'open' },
      { name: 'other → web:80 (every generation denies)', from: other, to: web, port: 80, expect: 'closed' },
      { name: 'other → web:81 (every generation denies)', from: other, to: web, port: 81, expect: 'closed' },
      { name: 'client → web:81 (odd generations)', from: client, to: web, port: 81, expect: 'any' },
      { name: 'guest → web:80 (odd generations)', from: guest, to: web, port: 80, expect: 'any' },
      { name: 'web → client:80 (not isolated)', from: web, to: client, port: 80, expect: 'open' },
    ];
  }

  /** Every pod pair on port 80, and the changing flows to web:81, judged by the oracle. */
  async restartFlows(): Promise<LoopFlow[]> {
    const ns = this.opts.namespace;
    const names = [...this.sandbox.pods.keys()];
    const pairs = names.flatMap((a) => names.filter((b) => b !== a).map((b) => [a, b, 80] as [string, string, number]));
    pairs.push([`${ns}/client`, `${ns}/web`, 81], [`${ns}/other`, `${ns}/web`, 81]);
    return oracleFlows(this.sandbox.kc, this.sandbox, pairs);
  }

  /**
   * Stops the node's agent gracefully (it must exit 0), starts it again, then kills it and starts it
   * again; the ms from each start to its first sync (a no-op apply), process start-up included.
   */
  async restartTwice(node: string): Promise<number[]> {
    const restartMs: number[] = [];
    await sleep(500);
    for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
      const old = this.agents.get(node)!;
      if (signal === 'SIGTERM') {
        const code = await old.stop();
        if (code !== 0) throw new Error(`a graceful stop exited ${code}\n${this.tail(node)}`);
      } else await old.kill('SIGKILL');
      const started = performance.now();
      const fresh = await this.startAgent(node);
      await waitFor('the restarted agent to finish its first sync', async () => metricValue(await fresh.metrics('/node-metrics'), 'fencer_agent_applies_total', { result: 'noop' }) >= 1, 20_000, 50)
        .catch((e: Error) => { throw new Error(`${e.message}\n${this.tail(node)}`); });
      restartMs.push(performance.now() - started);
      await sleep(500);
    }
    return restartMs;
  }

  /** The last lines of a node's agent log, for failure messages. */
  tail(node: string): string {
    const p = this.agents.get(node);
    return p ? p.log().trim().split('\n').slice(-15).join('\n') : '';
  }

  async stop(): Promise<void> {
    for (const a of this.agents.values()) await a.kill('SIGKILL');
    await this.sandbox.stop();
    await this.sandbox.kubelet.deleteNamespace(this.opts.namespace).catch(() => undefined);
    for (const n of this.opts.nodes) await this.sandbox.kubelet.deleteNode(n).catch(() => undefined);
    for (const s of this.shims.values()) s.destroy();
    if (process.env.FENCER_KEEP_LOGS) console.error(`agent logs kept in ${this.logs}`);
    else rmSync(this.logs, { recursive: true, force: true });
  }
}
