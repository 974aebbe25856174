// Plays the parts of a cluster the test control plane lacks: the kubelet (reports pod IPs, host IPs
// and phases through the status subresource, confirms deletions), the node IPAM and lifecycle
// controllers (podCIDRs, Ready), and the namespace controller (empties and finalizes deleted
// namespaces). Everything goes through the real apiserver, so watchers see real events.
//
//   const k = kubelet(kc);
//   await k.createNode('node-a', '10.244.1.0/24');
//   await k.createPod({ namespace: 'default', name: 'web', node: 'node-a', labels: { app: 'web' },
//                       ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }] });
import https from 'node:https';
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  ApiException,
  CoreV1Api,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
  type V1Container,
  type V1Namespace,
  type V1Node,
  type V1Pod,
} from '@kubernetes/client-node';

export interface PortSpec {
  name?: string;
  containerPort: number;
  protocol?: 'TCP' | 'UDP' | 'SCTP';
}

export interface PodSpec {
  namespace: string;
  name: string;
  /** The Node the pod runs on; it must exist (createNode). */
  node: string;
  labels?: Record<string, string>;
  /** Ports of the pod's single container "main". */
  ports?: PortSpec[];
  /** Several containers instead of one (named ports may differ per container). */
  containers?: Array<{ name: string; ports?: PortSpec[] }>;
  /** The pod's IP; by default the lowest free address of the node's podCIDR from .2 up. */
  ip?: string;
  /** A host-network pod: its IP is the node's InternalIP. */
  hostNetwork?: boolean;
  /** Default Running; Pending leaves the pod without an IP, as a kubelet does before the sandbox is up. */
  phase?: 'Pending' | 'Running' | 'Succeeded' | 'Failed';
}

export interface NodeOptions {
  /** Default: derived from the name, in 172.18.0.0/16. */
  internalIP?: string;
  labels?: Record<string, string>;
  /** Default true. */
  ready?: boolean;
}

/** A JSON merge patch for pod.status (timestamps as RFC 3339 strings; null removes a field). */
export type PodStatusPatch = Record<string, unknown>;

export type LabelChanges = Record<string, string | null>;

export interface Kubelet {
  /** Creates the namespace, or adds/overwrites these labels on an existing one. */
  createNamespace(name: string, labels?: Record<string, string>): Promise<V1Namespace>;
  /** Empties, deletes and finalizes a namespace as the namespace controller would; waits until it is gone. */
  deleteNamespace(name: string): Promise<void>;
  labelNamespace(name: string, labels: LabelChanges): Promise<V1Namespace>;
  /** A Node with spec.podCIDR(s), and through status a Ready condition and InternalIP/Hostname addresses. */
  createNode(name: string, podCIDR: string, opts?: NodeOptions): Promise<V1Node>;
  deleteNode(name: string): Promise<void>;
  /** Creates a Pod bound to `node`, then reports it (podIP, hostIP, phase) through pods/status. */
  createPod(spec: PodSpec): Promise<V1Pod>;
  /** Merge-patches pods/status, e.g. { phase: 'Succeeded' } or a new podIP. */
  patchPodStatus(namespace: string, name: string, status: PodStatusPatch): Promise<V1Pod>;
  /**
   * Deletes a pod. gracePeriodSeconds 0 (default) removes it at once, as a kubelet confirming the
   * stop; a positive value leaves it Terminating (deletionTimestamp set) until deleted again with 0.
   * Missing pods are ignored.
   */
  deletePod(namespace: string, name: string, opts?: { gracePeriodSeconds?: number }): Promise<void>;
  /** Sets (string) or removes (null) labels. */
  labelPod(namespace: string, name: string, labels: LabelChanges): Promise<V1Pod>;
}

const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

function isStatus(e: unknown, ...codes: number[]): boolean {
  return e instanceof ApiException && codes.includes(e.code);
}

function ipToInt(ip: string): number {
  const parts = ip.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) throw new Error(`not an IPv4 address: ${ip}`);
  return ((parts[0] << 24) | (parts[1] << 16) | (parts[2] << 8) | parts[3]) >>> 0;
}

function intToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/** Addresses a kubelet could hand out in a CIDR: network+2 .. broadcast-1 (network+1 is the gateway). */
function* hostAddresses(cidr: string): Generator<string> {
  const [base, bitsText] = cidr.split('/');
  const bits = Number(bitsText);
  const size = 2 ** (32 - bits);
  const network = ipToInt(base) & (bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0);
  for (let i = 2; i < size - 1; i++) yield intToIp((network + i) >>> 0);
}

function defaultNodeIP(name: string): string {
  const h = createHash('sha256').update(name).digest();
  return `172.18.${h[0]}.${(h[1] % 253) + 1}`;
}

/** RFC 3339 without fractions, as Kubernetes writes timestamps. */
function timestamp(): string {
  return new Date().toISOString().replace(/\.\d+Z$/, 'Z');
}

function podReport(spec: PodSpec, podIP: string | undefined, hostIP: string, now: string): PodStatusPatch {
  const phase = spec.phase ?? 'Running';
  const running = phase === 'Running';
  const condition = (type: string, status: boolean) => ({ type, status: status ? 'True' : 'False', lastTransitionTime: now });
  return {
    phase,
    hostIP,
    hostIPs: [{ ip: hostIP }],
    ...(podIP ? { podIP, podIPs: [{ ip: podIP }] } : {}),
    startTime: now,
    conditions: [
      condition('PodScheduled', true),
      condition('Initialized', true),
      condition('ContainersReady', running),
      condition('Ready', running),
    ],
  };
}

/** Helpers acting as kubelet and controllers through the apiserver `kc` points at (admin rights). */
export function kubelet(kc: KubeConfig): Kubelet {
  const core = kc.makeApiClient(CoreV1Api);

  async function raw(method: string, path: string, body?: unknown): Promise<{ status: number; body: string }> {
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error('KubeConfig has no current cluster');
    const options: https.RequestOptions = { method, agent: false, headers: { Accept: 'application/json' } };
    await kc.applyToHTTPSOptions(options);
    const payload = body === undefined ? undefined : JSON.stringify(body);
    if (payload !== undefined) options.headers = { ...options.headers, 'Content-Type': 'application/json' };
    return new Promise((resolve, reject) => {
      const req = https.request(new URL(path, cluster.server), options, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      });
      req.on('error', reject);
      req.end(payload);
    });
  }

  /** Every namespaced resource the namespace controller would empty: [collection path template]. */
  async function namespacedCollections(): Promise<string[]> {
    const paths: string[] = [];
    const addFrom = async (groupVersionPath: string) => {
      const res = await raw('GET', groupVersionPath);
      if (res.status !== 200) return;
      const list = JSON.parse(res.body) as { resources: Array<{ name: string; namespaced: boolean; verbs: string[] }> };
      for (const r of list.resources) {
        if (r.namespaced && !r.name.includes('/') && r.verbs.includes('deletecollection')) paths.push(`${groupVersionPath}/namespaces/{ns}/${r.name}`);
      }
    };
    await addFrom('/api/v1');
    const groups = JSON.parse((await raw('GET', '/apis')).body) as { groups: Array<{ preferredVersion: { groupVersion: string } }> };
    await Promise.all(groups.groups.map((g) => addFrom(`/apis/${g.preferredVersion.groupVersion}`)));
    return paths;
  }

  const self: Kubelet = {
    async createNamespace(name, labels = {}) {
      try {
        return await core.createNamespace({ body: { metadata: { name, labels } } });
      } catch (e) {
        if (!isStatus(e, 409)) throw e;
        return core.patchNamespace({ name, body: { metadata: { labels } } }, mergePatch);
      }
    },

    async deleteNamespace(name) {
      try {
        await core.deleteNamespace({ name });
      } catch (e) {
        if (isStatus(e, 404)) return;
        throw e;
      }
      // The namespace is Terminating (no new objects admitted): delete its content, then finalize.
      const deleteOptions = { apiVersion: 'v1', kind: 'DeleteOptions', gracePeriodSeconds: 0, propagationPolicy: 'Background' };
      for (const path of await namespacedCollections()) {
        const res = await raw('DELETE', path.replace('{ns}', encodeURIComponent(name)), deleteOptions);
        if (res.status >= 300 && ![404, 405].includes(res.status)) throw new Error(`DELETE ${path} in ${name}: ${res.status} ${res.body}`);
      }
      // deletecollection leaves pods that were already Terminating alone: confirm those one by one.
      for (const pod of (await core.listNamespacedPod({ namespace: name })).items) {
        if (pod.metadata?.name) await self.deletePod(name, pod.metadata.name);
      }
      try {
        const ns = await core.readNamespace({ name });
        await core.replaceNamespaceFinalize({ name, body: { ...ns, spec: { ...ns.spec, finalizers: [] } } });
      } catch (e) {
        if (!isStatus(e, 404)) throw e;
      }
      for (let i = 0; i < 100; i++) {
        try {
          await core.readNamespace({ name });
        } catch (e) {
          if (isStatus(e, 404)) return;
          throw e;
        }
        await sleep(100);
      }
      throw new Error(`namespace ${name} still exists 10 s after it was finalized`);
    },

    labelNamespace(name, labels) {
      return core.patchNamespace({ name, body: { metadata: { labels } } }, mergePatch);
    },

    async createNode(name, podCIDR, opts = {}) {
      const internalIP = opts.internalIP ?? defaultNodeIP(name);
      const labels = { 'kubernetes.io/hostname': name, 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64', ...opts.labels };
      await core.createNode({ body: { metadata: { name, labels }, spec: { podCIDR, podCIDRs: [podCIDR] } } });
      const now = timestamp();
      const ready = opts.ready ?? true;
      return core.patchNodeStatus(
        {
          name,
          body: {
            status: {
              addresses: [
                { type: 'InternalIP', address: internalIP },
                { type: 'Hostname', address: name },
              ],
              conditions: [
                {
                  type: 'Ready',
                  status: ready ? 'True' : 'False',
                  reason: ready ? 'KubeletReady' : 'KubeletNotReady',
                  message: ready ? 'kubelet is posting ready status (played by fencer tests)' : 'played by fencer tests',
                  lastHeartbeatTime: now,
                  lastTransitionTime: now,
                },
              ],
            },
          },
        },
        mergePatch,
      );
    },

    async deleteNode(name) {
      try {
        await core.deleteNode({ name });
      } catch (e) {
        if (!isStatus(e, 404)) throw e;
      }
    },

    async createPod(spec) {
      let node: V1Node;
      try {
        node = await core.readNode({ name: spec.node });
      } catch (e) {
        if (isStatus(e, 404)) throw new Error(`createPod ${spec.namespace}/${spec.name}: node ${spec.node} does not exist (createNode first)`);
        throw e;
      }
      const hostIP = node.status?.addresses?.find((a) => a.type === 'InternalIP')?.address;
      if (!hostIP) throw new Error(`node ${spec.node} has no InternalIP address`);
      const phase = spec.phase ?? 'Running';
      let podIP: string | undefined;
      if (phase !== 'Pending') {
        if (spec.hostNetwork) podIP = hostIP;
        else if (spec.ip) podIP = spec.ip;
        else {
          const cidr = node.spec?.podCIDR;
          if (!cidr) throw new Error(`node ${spec.node} has no podCIDR to allocate ${spec.namespace}/${spec.name} an IP from`);
          const pods = await core.listPodForAllNamespaces({ fieldSelector: `spec.nodeName=${spec.node}` });
          const used = new Set(pods.items.flatMap((p) => (p.status?.podIPs ?? []).map((i) => i.ip)));
          for (const candidate of hostAddresses(cidr)) {
            if (!used.has(candidate)) {
              podIP = candidate;
              break;
            }
          }
          if (!podIP) throw new Error(`node ${spec.node}: podCIDR ${cidr} is full`);
        }
      }
      const toPorts = (ports: PortSpec[] = []) => ports.map((p) => ({ ...(p.name ? { name: p.name } : {}), containerPort: p.containerPort, protocol: p.protocol ?? 'TCP' }));
      const containers: V1Container[] = (spec.containers ?? [{ name: 'main', ports: spec.ports }]).map((c) => ({
        name: c.name,
        image: 'fencer.test/pause',
        ports: toPorts(c.ports),
      }));
      await core.createNamespacedPod({
        namespace: spec.namespace,
        body: {
          metadata: { name: spec.name, namespace: spec.namespace, labels: spec.labels ?? {} },
          spec: {
            nodeName: spec.node,
            hostNetwork: spec.hostNetwork ?? false,
            automountServiceAccountToken: false,
            terminationGracePeriodSeconds: 0,
            containers,
          },
        },
      });
      return self.patchPodStatus(spec.namespace, spec.name, podReport(spec, podIP, hostIP, timestamp()));
    },

    patchPodStatus(namespace, name, status) {
      return core.patchNamespacedPodStatus({ namespace, name, body: { status } }, mergePatch);
    },

    async deletePod(namespace, name, opts = {}) {
      try {
        await core.deleteNamespacedPod({ namespace, name, gracePeriodSeconds: opts.gracePeriodSeconds ?? 0 });
      } catch (e) {
        if (!isStatus(e, 404)) throw e;
      }
    },

    labelPod(namespace, name, labels) {
      return core.patchNamespacedPod({ namespace, name, body: { metadata: { labels } } }, mergePatch);
    },
  };
  return self;
}
