// A miniature cluster on one Linux machine, no Docker: the real kube-apiserver and etcd, the
// operator, and one agent per simulated node; nodes and pods are network namespaces. The sandbox
// plays kubelet: it registers Nodes and Pods with their real addresses.
import { CustomObjectsApi, NetworkingV1Api, ApiException, type KubeConfig, type V1NetworkPolicy } from '@kubernetes/client-node';
import { startAgent, type RunningAgent } from '../cli/agent.ts';
import { expandSpec } from '../crds/codec.ts';
import { toClientPolicy } from '../model/cluster.ts';
import { CPS_GROUP, CPS_PLURAL, CPS_VERSION, type CompiledPolicySet } from '../crds/types.ts';
import { startOperator, type OperatorHandle } from '../operator/operator.ts';
import type { Logger } from '../runtime/log.ts';
import type { Cluster } from '../test/cluster/control-plane.ts';
import { kubelet, type Kubelet } from '../test/cluster/kubelet.ts';
import { Topology, type PodHandle, type ProbeTarget } from '../test/netns/topology.ts';

export interface SandboxNode { name: string; podCIDR: string }

export interface SandboxPod {
  namespace: string;
  name: string;
  node: string;
  ip: string;
  labels: Record<string, string>;
  ports: Array<{ name?: string; port: number; protocol: 'TCP' | 'UDP' | 'SCTP' }>;
}

export interface SandboxOptions {
  cluster: Cluster;
  nodes: SandboxNode[];
  /** Names every network namespace; a crashed sandbox is cleaned up by it. */
  prefix: string;
  log: Logger;
  driftSeconds?: number;
  /** false: no in-process agents (a test runs them as processes, `fencer agent --netns`). Default true. */
  startAgents?: boolean;
}

export class Sandbox {
  readonly cluster: Cluster;
  readonly kc: KubeConfig;
  readonly kubelet: Kubelet;
  readonly topology: Topology;
  readonly operator: OperatorHandle;
  readonly agents = new Map<string, RunningAgent>();
  readonly pods = new Map<string, { pod: SandboxPod; handle: PodHandle }>();
  private readonly net: NetworkingV1Api;
  private readonly custom: CustomObjectsApi;

  private readonly nodeNames: string[];

  private constructor(cluster: Cluster, topology: Topology, operator: OperatorHandle, nodeNames: string[]) {
    this.nodeNames = nodeNames;
    this.cluster = cluster;
    this.kc = cluster.kubeConfig();
    this.kubelet = kubelet(this.kc);
    this.topology = topology;
    this.operator = operator;
    this.net = this.kc.makeApiClient(NetworkingV1Api);
    this.custom = this.kc.makeApiClient(CustomObjectsApi);
  }

  static async start(opts: SandboxOptions): Promise<Sandbox> {
    await opts.cluster.installCrds();
    const topology = await Topology.create({ prefix: opts.prefix, nodes: opts.nodes });
    try {
      const kl = kubelet(opts.cluster.kubeConfig());
      for (const n of opts.nodes) await kl.createNode(n.name, n.podCIDR);
      const operator = await startOperator({ kubeConfig: opts.cluster.kubeConfig(), metricsPort: 0, metricsHost: '127.0.0.1', coalesceMs: 20, log: opts.log.child({ component: 'operator' }) });
      const sandbox = new Sandbox(opts.cluster, topology, operator, opts.nodes.map((n) => n.name));
      if (opts.startAgents !== false) for (const n of opts.nodes) await sandbox.startAgent(n.name, opts);
      return sandbox;
    } catch (e) {
      await topology.destroy();
      throw e;
    }
  }

  private async startAgent(node: string, opts: SandboxOptions): Promise<void> {
    const agent = await startAgent({
      nodeName: node, kubeconfig: this.cluster.kubeconfigPath, netns: this.topology.nodeNetns(node), metricsPort: 0, metricsHost: '127.0.0.1',
      driftSeconds: opts.driftSeconds ?? 10, hookPosition: 'first', iptablesMode: 'auto', log: opts.log.child({ component: 'agent', node }),
    });
    this.agents.set(node, agent);
  }

  async addPod(pod: SandboxPod): Promise<void> {
    const key = `${pod.namespace}/${pod.name}`;
    const tcp = pod.ports.filter((p) => p.protocol === 'TCP').map((p) => p.port);
    const udp = pod.ports.filter((p) => p.protocol === 'UDP').map((p) => p.port);
    const handle = await this.topology.addPod(pod.node, { name: key, ip: pod.ip, tcp, udp });
    this.pods.set(key, { pod, handle });
    await this.kubelet.createPod({
      namespace: pod.namespace, name: pod.name, node: pod.node, labels: pod.labels, ip: pod.ip,
      ports: pod.ports.map((p) => ({ name: p.name, containerPort: p.port, protocol: p.protocol })),
    });
  }

  async removePod(key: string): Promise<void> {
    const entry = this.pods.get(key);
    if (!entry) return;
    this.pods.delete(key);
    await this.kubelet.deletePod(entry.pod.namespace, entry.pod.name);
    await this.topology.removePod(entry.handle);
  }

  async applyPolicy(manifest: V1NetworkPolicy): Promise<void> {
    const policy = toClientPolicy(manifest);
    const namespace = policy.metadata!.namespace ?? 'default';
    const name = policy.metadata!.name!;
    try {
      const current = await this.net.readNamespacedNetworkPolicy({ namespace, name });
      await this.net.replaceNamespacedNetworkPolicy({ namespace, name, body: { ...policy, metadata: { ...policy.metadata, resourceVersion: current.metadata?.resourceVersion } } });
    } catch (e) {
      if (!(e instanceof ApiException) || e.code !== 404) throw e;
      await this.net.createNamespacedNetworkPolicy({ namespace, body: policy });
    }
  }

  async deletePolicy(namespace: string, name: string): Promise<void> {
    await this.net.deleteNamespacedNetworkPolicy({ namespace, name });
  }

  async deleteAllPolicies(): Promise<void> {
    const all = await this.net.listNetworkPolicyForAllNamespaces();
    for (const p of all.items) await this.deletePolicy(p.metadata!.namespace!, p.metadata!.name!);
  }

  async compiledPolicySets(): Promise<CompiledPolicySet[]> {
    const list = (await this.custom.listClusterCustomObject({ group: CPS_GROUP, version: CPS_VERSION, plural: CPS_PLURAL })) as { items: CompiledPolicySet[] };
    return list.items.map((c) => ({ ...c, spec: expandSpec(c.spec) }));
  }

  /**
   * Waits until every node's CompiledPolicySet carries the expected content hash and its agent
   * reports that hash enforced; returns the milliseconds it took, or throws naming the laggards.
   */
  async waitEnforced(expected: Map<string, string>, timeoutMs = 30000): Promise<number> {
    const started = performance.now();
    let lagging: string[] = [];
    while (performance.now() - started < timeoutMs) {
      const byNode = new Map((await this.compiledPolicySets()).map((c) => [c.metadata.name, c]));
      lagging = [...expected].flatMap(([node, hash]) => {
        const cps = byNode.get(node);
        if (!cps) return [`${node}: no CompiledPolicySet yet`];
        if (cps.spec.contentHash !== hash) return [`${node}: operator wrote ${cps.spec.contentHash.slice(7, 19)}, expected ${hash.slice(7, 19)}`];
        if (cps.status?.appliedHash !== hash) return [`${node}: agent enforces ${cps.status?.appliedHash?.slice(7, 19) ?? 'nothing'}${degraded(cps)}`];
        return [];
      });
      if (lagging.length === 0) return performance.now() - started;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`not enforced after ${timeoutMs} ms: ${lagging.join('; ')}`);
  }

  /** Probes from every pod to every other pod, sources in parallel; result[src][dst]. */
  async probeAll(protocol: 'TCP' | 'UDP', port: number, timeoutMs = 800): Promise<Map<string, Map<string, boolean>>> {
    const entries = [...this.pods.values()];
    const rows = await Promise.all(entries.map(async (src) => {
      const others = entries.filter((d) => d !== src);
      const targets: ProbeTarget[] = others.map((d) => ({ ip: d.pod.ip, protocol, port }));
      const results = await this.topology.probe(src.handle, targets, timeoutMs);
      const row = new Map<string, boolean>([[key(src.pod), true]]);
      others.forEach((d, i) => row.set(key(d.pod), results[i]));
      return [key(src.pod), row] as const;
    }));
    return new Map(rows);
  }

  async stop(): Promise<void> {
    for (const agent of this.agents.values()) await agent.stop();
    this.agents.clear();
    await this.operator.stop();
    await this.topology.destroy();
    await this.forgetNodes();
  }

  /** Removes the Nodes it registered and their CompiledPolicySets, so a shared apiserver is left as found. */
  private async forgetNodes(): Promise<void> {
    for (const node of this.nodeNames) {
      await this.kubelet.deleteNode(node).catch(() => undefined);
      await this.custom.deleteClusterCustomObject({ group: CPS_GROUP, version: CPS_VERSION, plural: CPS_PLURAL, name: node }).catch(() => undefined);
    }
  }
}

function key(p: SandboxPod): string {
  return `${p.namespace}/${p.name}`;
}

function degraded(cps: CompiledPolicySet): string {
  const d = cps.status?.conditions?.find((c) => c.type === 'Degraded' && c.status === 'True');
  return d ? ` (Degraded: ${d.message})` : '';
}
