// The bench's picture of the cluster it churns: nodes with their host IPs and free pod IPs, and the
// live pods (identity and kubelet state) that churn can pick. Every quietEvery-th node gets no pod
// events at all, so writes to its CompiledPolicySet can only come from events on other nodes.
import { podCIDR } from './synthetic.ts';
import { nodeName } from './watch-designs.ts';
import type { PodIdentity } from './kubelet-pod.ts';
import type { KubeletState } from './kubelet-status.ts';

export interface ModelNode {
  index: number;
  name: string;
  hostIP: string;
  podCIDR: string;
  quiet: boolean;
  free: string[];
}

export interface ModelPod {
  id: PodIdentity;
  node: ModelNode;
  ip: string;
  state: KubeletState;
  busy: boolean;
}

/** A small seeded PRNG (mulberry32): the same seed gives the same churn. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function hostIP(node: number): string {
  return `172.${16 + (node >> 14)}.${(node >> 6) & 255}.${(node & 63) + 10}`;
}

export class ClusterModel {
  readonly nodes: ModelNode[];
  readonly namespaces: string[];
  private readonly churnable: ModelPod[] = [];
  private readonly slot = new Map<ModelPod, number>();
  /** Pods created by churn so far, over every phase (their names must not repeat). */
  created = 0;

  constructor(nodes: number, namespaces: string[], quietEvery = 4) {
    if (quietEvery < 2) throw new Error('quietEvery must leave some nodes churned');
    this.namespaces = namespaces;
    this.nodes = Array.from({ length: nodes }, (_, index) => {
      const cidr = podCIDR(index);
      const prefix = cidr.split('.').slice(0, 3).join('.');
      return { index, name: nodeName(index), hostIP: hostIP(index), podCIDR: cidr, quiet: index % quietEvery === quietEvery - 1, free: Array.from({ length: 253 }, (_, h) => `${prefix}.${h + 2}`).reverse() };
    });
  }

  get quietNodes(): ModelNode[] {
    return this.nodes.filter((n) => n.quiet);
  }

  /** Takes a specific address (the initial population) or the next free one of the node. */
  allocate(node: ModelNode, ip?: string): string | undefined {
    if (ip === undefined) return node.free.pop();
    node.free = node.free.filter((f) => f !== ip);
    return ip;
  }

  release(node: ModelNode, ip: string): void {
    node.free.push(ip);
  }

  add(pod: ModelPod): void {
    if (pod.node.quiet) return;
    this.slot.set(pod, this.churnable.length);
    this.churnable.push(pod);
  }

  remove(pod: ModelPod): void {
    const i = this.slot.get(pod);
    if (i === undefined) return;
    const last = this.churnable.pop()!;
    if (last !== pod) {
      this.churnable[i] = last;
      this.slot.set(last, i);
    }
    this.slot.delete(pod);
  }

  get size(): number {
    return this.churnable.length;
  }

  /** A random pod on a churned node that no operation is working on. */
  pick(rng: () => number): ModelPod | undefined {
    for (let attempt = 0; attempt < 20 && this.churnable.length; attempt++) {
      const pod = this.churnable[Math.floor(rng() * this.churnable.length)];
      if (!pod.busy) return pod;
    }
    return undefined;
  }

  randomActiveNode(rng: () => number): ModelNode {
    for (;;) {
      const node = this.nodes[Math.floor(rng() * this.nodes.length)];
      if (!node.quiet) return node;
    }
  }
}
