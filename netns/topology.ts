// Simulated Kubernetes nodes and pods as network namespaces, for real-packet tests of the Linux agent.
//
//   <prefix>-fab           bridge br0; one port <prefix>-n<i> per node (the "fabric")
//   <prefix>-<node>        bridge br0 = first address of the podCIDR, uplink up0 = 10.250.0.<i>/24,
//                          ip_forward=1, bridge-nf-call-iptables=1, routes to the other podCIDRs
//   <prefix>-p<N>          pod: eth0 = ip/<podCIDR len>, default via the node bridge; the veth peer
//                          <prefix>-p<N> is a port of the node's br0; serve.ts listens inside
//
// Every link is created directly inside a namespace of the topology (none in the root netns), so
// deleting the namespaces removes everything. Same-node pod traffic is bridged and, thanks to
// br_netfilter, crosses the node's iptables FORWARD chain; cross-node traffic is routed through both
// node namespaces, crossing FORWARD on each.
import { execa, type ResultPromise } from 'execa';
import { fileURLToPath } from 'node:url';
import { cidrContains, firstHost, formatCidr, parseCidr, type Cidr } from './cidr.ts';
import { NODE_BIN, ip, listNetns, nsExec, removeNetns, removeNetnsSync } from './ip.ts';
import { track, untrack } from './lifecycle.ts';

const SERVE = fileURLToPath(new URL('./serve.ts', import.meta.url));
const PROBE = fileURLToPath(new URL('./probe.ts', import.meta.url));
const UPLINK_NET = '10.250.0';
const READY_TIMEOUT_MS = 10_000;

export interface TopologyOptions {
  /** 1..5 lowercase letters/digits, starting with a letter; names every namespace and link. */
  prefix: string;
  nodes: Array<{ name: string; podCIDR: string }>;
}

export interface PodSpec { name: string; ip: string; tcp: number[]; udp: number[] }

export interface PodHandle {
  readonly name: string;
  readonly node: string;
  readonly ip: string;
  readonly netns: string;
  readonly tcp: readonly number[];
  readonly udp: readonly number[];
}

export interface ProbeTarget { ip: string; protocol: 'TCP' | 'UDP'; port: number }

export interface ExecResult { stdout: string; stderr: string; exitCode: number }

interface NodeState { name: string; netns: string; index: number; cidr: Cidr; gateway: string; uplinkIp: string }

type Server = ResultPromise<{ stdin: 'pipe'; stdout: 'pipe'; stderr: 'pipe'; buffer: false; reject: false }>;

export class Topology {
  readonly prefix: string;
  private readonly fabNetns: string;
  private readonly nodes = new Map<string, NodeState>();
  private readonly pods = new Map<string, { handle: PodHandle; server: Server | undefined }>();
  /** Every netns this topology created, in creation order. */
  private readonly created = new Set<string>();
  private podCounter = 0;
  private destroyed = false;

  private constructor(prefix: string) {
    this.prefix = prefix;
    this.fabNetns = `${prefix}-fab`;
  }

  /** Removes every namespace named `<prefix>-…` (killing the processes inside), e.g. after a crash. */
  static async cleanupPrefix(prefix: string): Promise<void> {
    checkPrefix(prefix);
    const names = (await listNetns()).filter((n) => n.startsWith(`${prefix}-`));
    await Promise.all(names.map((n) => removeNetns(n)));
  }

  static async create(opts: TopologyOptions): Promise<Topology> {
    checkPrefix(opts.prefix);
    if (opts.nodes.length === 0 || opts.nodes.length > 250) throw new Error('need 1..250 nodes');
    await Topology.cleanupPrefix(opts.prefix);
    const topo = new Topology(opts.prefix);
    track(topo);
    try {
      opts.nodes.forEach((n, i) => topo.defineNode(n.name, n.podCIDR, i));
      await topo.addNetns(topo.fabNetns);
      await ip(['-n', topo.fabNetns, 'link', 'add', 'br0', 'type', 'bridge', 'forward_delay', '0', 'stp_state', '0']);
      await ip(['-n', topo.fabNetns, 'link', 'set', 'br0', 'up']);
      await Promise.all([...topo.nodes.values()].map((n) => topo.setupNode(n)));
      await Promise.all([...topo.nodes.values()].map((n) => topo.routeNode(n)));
      return topo;
    } catch (err) {
      await topo.destroy();
      throw err;
    }
  }

  nodeNetns(node: string): string {
    return this.node(node).netns;
  }

  podNetns(handle: PodHandle): string {
    return handle.netns;
  }

  /** Runs a command inside a node netns; throws on a non-zero exit unless reject is false. */
  async nodeExec(node: string, cmd: string[], opts: { reject?: boolean } = {}): Promise<ExecResult> {
    const r = await nsExec(this.node(node).netns, cmd);
    if (r.exitCode !== 0 && opts.reject !== false) {
      throw new Error(`[${node}] ${cmd.join(' ')} failed (exit ${r.exitCode}): ${r.stderr.trim()}`);
    }
    return r;
  }

  async addPod(node: string, pod: PodSpec): Promise<PodHandle> {
    this.checkLive();
    const n = this.node(node);
    if (!cidrContains(n.cidr, pod.ip) || pod.ip === n.gateway) {
      throw new Error(`pod ${pod.name}: ${pod.ip} is not a free pod address of ${formatCidr(n.cidr)}`);
    }
    for (const p of this.pods.values()) {
      if (p.handle.ip === pod.ip) throw new Error(`pod ${pod.name}: ${pod.ip} already used by ${p.handle.name}`);
    }
    const id = ++this.podCounter;
    const netns = `${this.prefix}-p${id}`;
    const peer = `${this.prefix}-p${id}`; // node-side veth, a port of the node's br0
    const handle: PodHandle = { name: pod.name, node, ip: pod.ip, netns, tcp: [...pod.tcp], udp: [...pod.udp] };
    const entry: { handle: PodHandle; server: Server | undefined } = { handle, server: undefined };
    this.pods.set(netns, entry);
    try {
      await this.addNetns(netns);
      await ip(['-n', netns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', peer, 'netns', n.netns]);
      await ip(['-n', n.netns, 'link', 'set', peer, 'master', 'br0', 'up']);
      await ip(['-n', netns, 'addr', 'add', `${pod.ip}/${n.cidr.len}`, 'dev', 'eth0']);
      await ip(['-n', netns, 'link', 'set', 'eth0', 'up']);
      await ip(['-n', netns, 'route', 'add', 'default', 'via', n.gateway]);
      if (pod.tcp.length + pod.udp.length > 0) entry.server = (await startServer(netns, pod.tcp, pod.udp)).server;
      return handle;
    } catch (err) {
      await this.removePod(handle);
      throw err;
    }
  }

  async removePod(handle: PodHandle): Promise<void> {
    const entry = this.pods.get(handle.netns);
    if (!entry) return;
    this.pods.delete(handle.netns);
    if (entry.server) {
      entry.server.kill('SIGTERM');
      await entry.server;
    }
    await removeNetns(handle.netns); // the node-side veth dies with the pod netns
    this.created.delete(handle.netns);
  }

  /** Probes every target from inside the pod, in parallel, with one process; results in order. */
  async probe(from: PodHandle, targets: ProbeTarget[], timeoutMs = 800): Promise<boolean[]> {
    this.checkLive();
    if (!this.pods.has(from.netns)) throw new Error(`pod ${from.name} is not part of this topology`);
    if (targets.length === 0) return [];
    const arg = JSON.stringify({ timeoutMs, targets });
    const r = await execa('ip', ['netns', 'exec', from.netns, NODE_BIN, PROBE, arg], { reject: false, timeout: timeoutMs + 15_000 });
    if (r.exitCode !== 0) throw new Error(`probe from ${from.name} failed (exit ${r.exitCode}): ${String(r.stderr).trim()}`);
    const results = JSON.parse(String(r.stdout)) as boolean[];
    if (results.length !== targets.length) throw new Error(`probe returned ${results.length} results for ${targets.length} targets`);
    return results;
  }

  /** Kills the pod servers and deletes every namespace (and so every link) created. Idempotent. */
  async destroy(): Promise<void> {
    this.destroyed = true;
    const servers = [...this.pods.values()].flatMap((p) => (p.server ? [p.server] : []));
    this.pods.clear();
    for (const s of servers) s.kill('SIGKILL');
    await Promise.all(servers);
    await Promise.all([...this.created].map((n) => removeNetns(n)));
    this.created.clear();
    untrack(this);
  }

  /** Synchronous destroy for process 'exit' / signal handlers. */
  destroySync(): void {
    this.destroyed = true;
    for (const p of this.pods.values()) p.server?.kill('SIGKILL');
    this.pods.clear();
    for (const n of this.created) removeNetnsSync(n);
    this.created.clear();
  }

  private defineNode(name: string, podCIDR: string, index: number): void {
    if (!/^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/.test(name) || name === 'fab' || /^p\d+$/.test(name)) {
      throw new Error(`bad node name ${JSON.stringify(name)} (lowercase DNS label; not "fab" or p<N>)`);
    }
    if (this.nodes.has(name)) throw new Error(`duplicate node ${name}`);
    const cidr = parseCidr(podCIDR);
    for (const other of this.nodes.values()) {
      if (cidrContains(other.cidr, firstHost(cidr)) || cidrContains(cidr, other.gateway)) {
        throw new Error(`podCIDR ${podCIDR} of ${name} overlaps ${formatCidr(other.cidr)} of ${other.name}`);
      }
    }
    this.nodes.set(name, {
      name, index, cidr, netns: `${this.prefix}-${name}`, gateway: firstHost(cidr), uplinkIp: `${UPLINK_NET}.${index + 1}`,
    });
  }

  private async setupNode(n: NodeState): Promise<void> {
    const fabPort = `${this.prefix}-n${n.index + 1}`;
    await this.addNetns(n.netns);
    const sysctl = await nsExec(n.netns, ['sysctl', '-qw', 'net.ipv4.ip_forward=1', 'net.bridge.bridge-nf-call-iptables=1']);
    if (sysctl.exitCode !== 0) {
      throw new Error(`sysctl in ${n.netns} failed (is br_netfilter loaded?): ${sysctl.stderr.trim()}`);
    }
    // A fixed MAC: a bridge otherwise takes the lowest MAC of its ports, so removing a pod could
    // change the gateway's MAC under every other pod's ARP cache and cut them off from other nodes.
    const mac = `02:fe:00:00:${(n.index >> 8).toString(16).padStart(2, '0')}:${(n.index & 255).toString(16).padStart(2, '0')}`;
    await ip(['-n', n.netns, 'link', 'add', 'br0', 'address', mac, 'type', 'bridge', 'forward_delay', '0', 'stp_state', '0']);
    await ip(['-n', n.netns, 'addr', 'add', `${n.gateway}/${n.cidr.len}`, 'dev', 'br0']);
    await ip(['-n', n.netns, 'link', 'set', 'br0', 'up']);
    await ip(['-n', n.netns, 'link', 'add', 'up0', 'type', 'veth', 'peer', 'name', fabPort, 'netns', this.fabNetns]);
    await ip(['-n', this.fabNetns, 'link', 'set', fabPort, 'master', 'br0', 'up']);
    await ip(['-n', n.netns, 'addr', 'add', `${n.uplinkIp}/24`, 'dev', 'up0']);
    await ip(['-n', n.netns, 'link', 'set', 'up0', 'up']);
  }

  private async routeNode(n: NodeState): Promise<void> {
    for (const other of this.nodes.values()) {
      if (other === n) continue;
      await ip(['-n', n.netns, 'route', 'add', formatCidr(other.cidr), 'via', other.uplinkIp, 'dev', 'up0']);
    }
  }

  private async addNetns(name: string): Promise<void> {
    await ip(['netns', 'add', name]);
    this.created.add(name);
    await ip(['-n', name, 'link', 'set', 'lo', 'up']);
  }

  private node(name: string): NodeState {
    const n = this.nodes.get(name);
    if (!n) throw new Error(`unknown node ${name}`);
    return n;
  }

  private checkLive(): void {
    if (this.destroyed) throw new Error('topology destroyed');
  }
}

function checkPrefix(prefix: string): void {
  if (!/^[a-z][a-z0-9]{0,4}$/.test(prefix)) throw new Error(`bad prefix ${JSON.stringify(prefix)} (1-5 of [a-z0-9], letter first)`);
}

/**
 * Starts serve.ts inside the pod netns and resolves once it printed "ready". The subprocess is a
 * thenable (it resolves when the process ends), hence the wrapper object.
 */
async function startServer(netns: string, tcp: number[], udp: number[]): Promise<{ server: Server }> {
  const server: Server = execa('ip', ['netns', 'exec', netns, NODE_BIN, SERVE, JSON.stringify({ tcp, udp })], {
    stdin: 'pipe', stdout: 'pipe', stderr: 'pipe', buffer: false, reject: false,
  });
  let stderr = '';
  server.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  try {
    await new Promise<void>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`server in ${netns} not ready after ${READY_TIMEOUT_MS}ms`)), READY_TIMEOUT_MS);
      server.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('ready\n')) { clearTimeout(timer); resolve(); }
      });
      server.once('exit', (code) => { clearTimeout(timer); reject(new Error(`server in ${netns} exited (${code}): ${stderr.trim()}`)); });
    });
  } catch (err) {
    server.kill('SIGKILL');
    await server;
    throw err;
  }
  return { server };
}
