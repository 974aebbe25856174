// A miniature cluster on one Linux machine, no Docker: the real kube-apiserver and etcd, the
// operator, and one agent per simulated node; nodes and pods are network namespaces. The sandbox
// plays kubelet: it registers Nodes and Pods with their real addresses.
import type { LinuxBackend } from '../agent/dataplane/choose.ts';
import { CustomObjectsApi, NetworkingV1Api, ApiException, type KubeConfig, type V1NetworkPolicy } from '@kubernetes/client-node';
import { startAgent, type RunningAgent } from '../cli/agent.ts';
import { expandSpec } from '../crds/codec.ts';
import { toClientPolicy } from '../model/cluster.ts';
import { CPS_GROUP, CPS_PLURAL, CPS_VERSION, type CompiledPolicySet, type CompiledPolicySetSpec } from '../crds/types.ts';
import { startOperator, type OperatorHandle } from '../operator/operator.ts';
import type { Logger } from '../runtime/log.ts';
import type { Cluster } from '../localcluster/control-plane.ts';
import { kubelet, type Kubelet } from '../localcluster/kubelet.ts';
import { Topology, type PodHandle, type ProbeTarget } from '../netns/topology.ts';
import { AgentProcess } from './agent-process.ts';
import { EnforcementWatch } from './enforcement-watch.ts';

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
  /**
   * in-process (default): every agent in this process, reachable by tests through `agents`;
   * processes: one `fencer agent --netns` process per node, applying in parallel as real nodes do;
   * none: a test starts its own.
   */
  agents?: 'in-process' | 'processes' | 'none';
  /** The agents' Linux dataplane (default: the agent's own choice, `auto`). */
  dataplane?: LinuxBackend;
}

export class Sandbox {
  readonly cluster: Cluster;
  readonly kc: KubeConfig;
  readonly kubelet: Kubelet;
  readonly topology: Topology;
  readonly operator: OperatorHandle;
  readonly agents = new Map<string, RunningAgent>();
  readonly agentProcesses = new Map<string, AgentProcess>();
  readonly pods = new Map<string, { pod: SandboxPod; handle: PodHandle }>();
  private readonly net: NetworkingV1Api;
  private readonly custom: CustomObjectsApi;
  private readonly enforcement: EnforcementWatch;

  private readonly nodeNames: string[];

  private constructor(cluster: Cluster, topology: Topology, operator: OperatorHandle, nodeNames: string[], log: Logger) {
    this.nodeNames = nodeNames;
    this.cluster = cluster;
    this.kc = cluster.kubeConfig();
    this.kubelet = kubelet(this.kc);
    this.topology = topology;
    this.operator = operator;
    this.net = this.kc.makeApiClient(NetworkingV1Api);
    this.custom = this.kc.makeApiClient(CustomObjectsApi);
    this.enforcement = new EnforcementWatch(this.kc, log.child({ component: 'sandbox' }), () => this.agentMetricsPorts());
  }

  static async start(opts: SandboxOptions): Promise<Sandbox> {
    await opts.cluster.installCrds();
    const topology = await Topology.create({ prefix: opts.prefix, nodes: opts.nodes });
    let sandbox: Sandbox | undefined;
    try {
      const kl = kubelet(opts.cluster.kubeConfig());
      for (const n of opts.nodes) await kl.createNode(n.name, n.podCIDR);
      const operator = await startOperator({ kubeConfig: opts.cluster.kubeConfig(), metricsPort: 0, metricsHost: '127.0.0.1', coalesceMs: 20, log: opts.log.child({ component: 'operator' }) });
      sandbox = new Sandbox(opts.cluster, topology, operator, opts.nodes.map((n) => n.name), opts.log);
      await sandbox.enforcement.start();
      const mode = opts.agents ?? 'in-process';
      if (mode === 'in-process') for (const n of opts.nodes) await sandbox.startAgent(n.name, opts);
      if (mode === 'processes') await sandbox.startAgentProcesses(opts);
      return sandbox;
    } catch (e) {
      if (sandbox) await sandbox.stop();
      else await topology.destroy();
      throw e;
    }
  }

  private async startAgent(node: string, opts: SandboxOptions): Promise<void> {
    const agent = await startAgent({
      nodeName: node, kubeconfig: this.cluster.kubeconfigPath, netns: this.topology.nodeNetns(node), metricsPort: 0, metricsHost: '127.0.0.1',
      driftSeconds: opts.driftSeconds ?? 10, hookPosition: 'first', iptablesMode: 'auto', dataplane: opts.dataplane, log: opts.log.child({ component: 'agent', node }),
    });
    this.agents.set(node, agent);
  }

  private async startAgentProcesses(opts: SandboxOptions): Promise<void> {
    for (const n of opts.nodes) {
      const agent = await AgentProcess.start({
        node: n.name, netns: this.topology.nodeNetns(n.name), kubeconfig: this.cluster.kubeconfigPath,
        driftSeconds: opts.driftSeconds ?? 10, logLevel: opts.log.level, dataplane: opts.dataplane,
      });
      this.agentProcesses.set(n.name, agent);
    }
  }

  /** Each node's agent metrics port, wherever the agent runs. */
  agentMetricsPorts(): Map<string, number | undefined> {
    return new Map([
      ...[...this.agents].map(([node, a]) => [node, a.metricsPort] as const),
      ...[...this.agentProcesses].map(([node, a]) => [node, a.metricsPort] as const),
    ]);
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

  /** Creates or replaces the policy; resolves with when the write was sent (performance.now()), after the read that precedes it. */
  async applyPolicy(manifest: V1NetworkPolicy): Promise<number> {
    const policy = toClientPolicy(manifest);
    const namespace = policy.metadata!.namespace ?? 'default';
    const name = policy.metadata!.name!;
    let current: V1NetworkPolicy | undefined;
    try {
      current = await this.net.readNamespacedNetworkPolicy({ namespace, name });
    } catch (e) {
      if (!(e instanceof ApiException) || e.code !== 404) throw e;
    }
    const sentAt = performance.now();
    if (current) await this.net.replaceNamespacedNetworkPolicy({ namespace, name, body: { ...policy, metadata: { ...policy.metadata, resourceVersion: current.metadata?.resourceVersion } } });
    else await this.net.createNamespacedNetworkPolicy({ namespace, body: policy });
    return sentAt;
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
   * Waits until every node's CompiledPolicySet carries the expected spec's content hash, its agent
   * reports that hash enforced and holds the spec's members of every set (`expected`: whole specs,
   * as the compiler's `compile` gives them); returns the milliseconds it took, or throws naming the laggards.
   */
  waitEnforced(expected: Map<string, CompiledPolicySetSpec>, timeoutMs = 30000): Promise<number> {
    return this.enforcement.until(expected, timeoutMs);
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
    await Promise.all([...this.agentProcesses.values()].map((a) => a.stop()));
    this.agentProcesses.clear();
    await this.enforcement.stop();
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
