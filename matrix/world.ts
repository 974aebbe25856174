// The scenario's cluster as Kubernetes objects, stepped through its changes: pod IPs allocated per
// node and never reused, placeholders resolved when a step is applied. Shared by the in-process
// matrix runner and the sandbox runner, which turn the same changes into API calls.
import type { ClusterChange } from '../operator/compile/compiler.ts';
import type { ClusterSnapshot, V1Namespace, V1NetworkPolicy, V1Node, V1Pod } from '../model/cluster.ts';
import { ScenarioError, type PodSpec, type Scenario, type Step } from './scenario.ts';

export interface PodInfo { key: string; spec: PodSpec; ip: string }

export class ScenarioWorld {
  readonly scenario: Scenario;
  readonly namespaces = new Map<string, V1Namespace>();
  readonly nodes = new Map<string, V1Node>();
  readonly pods = new Map<string, V1Pod>();
  readonly policies = new Map<string, V1NetworkPolicy>();
  private readonly podInfo = new Map<string, PodInfo>();
  private readonly nextHost = new Map<string, number>();

  constructor(scenario: Scenario) {
    this.scenario = scenario;
    scenario.nodes.forEach((name, i) => this.nodes.set(name, nodeObject(name, nodeCIDR(i))));
    for (const [name, labels] of scenario.namespaces) this.namespaces.set(name, namespaceObject(name, labels));
    for (const pod of scenario.pods) this.addPod(pod, 'cluster.pods');
  }

  snapshot(): ClusterSnapshot {
    return { namespaces: [...this.namespaces.values()], nodes: [...this.nodes.values()], pods: [...this.pods.values()], policies: [...this.policies.values()] };
  }

  /** Pods in grid order: the order they were listed or created. */
  livePods(): PodInfo[] {
    return [...this.podInfo.values()];
  }

  initialChanges(): ClusterChange[] {
    return [
      ...[...this.nodes.values()].map((object) => ({ kind: 'Node' as const, type: 'upsert' as const, object })),
      ...[...this.namespaces.values()].map((object) => ({ kind: 'Namespace' as const, type: 'upsert' as const, object })),
      ...[...this.pods.values()].map((object) => ({ kind: 'Pod' as const, type: 'upsert' as const, object })),
    ];
  }

  /** Applies one step in the documented order; returns the changes, in order. */
  applyStep(step: Step, field: string): ClusterChange[] {
    const changes: ClusterChange[] = [];
    step.delete.forEach((ref, i) => {
      const key = `${ref.namespace}/${ref.name}`;
      if (ref.kind === 'Pod') changes.push(this.removePod(key, `${field}.delete[${i}]`));
      else {
        const object = this.policies.get(key);
        if (!object) this.fail(`${field}.delete[${i}]`, `no NetworkPolicy ${key} to delete`);
        this.policies.delete(key);
        changes.push({ kind: 'NetworkPolicy', type: 'delete', object: object! });
      }
    });
    step.deletePods.forEach((key, i) => changes.push(this.removePod(key, `${field}.deletePods[${i}]`)));
    step.createPods.forEach((pod, i) => changes.push({ kind: 'Pod', type: 'upsert', object: this.addPod(pod, `${field}.createPods[${i}]`) }));
    step.labels.forEach((l, i) => changes.push(this.relabel(l, `${field}.labels[${i}]`)));
    step.apply.forEach((manifest, i) => {
      const object = this.resolvePlaceholders(manifest, `${field}.apply[${i}]`) as V1NetworkPolicy;
      object.metadata!.namespace ??= 'default';
      this.policies.set(`${object.metadata!.namespace}/${object.metadata!.name}`, object);
      changes.push({ kind: 'NetworkPolicy', type: 'upsert', object });
    });
    return changes;
  }

  private fail(field: string, reason: string): never {
    throw new ScenarioError(this.scenario.file, field, reason);
  }

  private addPod(spec: PodSpec, field: string): V1Pod {
    const key = `${spec.namespace}/${spec.name}`;
    if (this.podInfo.has(key)) this.fail(field, `pod ${key} already exists`);
    const ip = this.allocateIP(spec.node);
    const pod = podObject(spec, ip);
    this.pods.set(key, pod);
    this.podInfo.set(key, { key, spec, ip });
    return pod;
  }

  private removePod(key: string, field: string): ClusterChange {
    const object = this.pods.get(key);
    if (!object) this.fail(field, `no pod ${key} to delete`);
    this.pods.delete(key);
    this.podInfo.delete(key);
    return { kind: 'Pod', type: 'delete', object: object! };
  }

  private relabel(l: Step['labels'][number], field: string): ClusterChange {
    const apply = (labels: Record<string, string> | undefined) => {
      const out = { ...(labels ?? {}), ...l.set };
      for (const k of l.remove) delete out[k];
      return out;
    };
    if (l.kind === 'Namespace') {
      const ns = this.namespaces.get(l.name);
      if (!ns) this.fail(field, `no namespace ${l.name}`);
      const object = { ...ns!, metadata: { ...ns!.metadata, labels: { ...apply(ns!.metadata?.labels), 'kubernetes.io/metadata.name': l.name } } };
      this.namespaces.set(l.name, object);
      return { kind: 'Namespace', type: 'upsert', object };
    }
    const key = `${l.namespace}/${l.name}`;
    const pod = this.pods.get(key);
    if (!pod) this.fail(field, `no pod ${key}`);
    const object = { ...pod!, metadata: { ...pod!.metadata, labels: apply(pod!.metadata?.labels) } };
    this.pods.set(key, object);
    this.podInfo.get(key)!.spec = { ...this.podInfo.get(key)!.spec, labels: object.metadata.labels };
    return { kind: 'Pod', type: 'upsert', object };
  }

  private allocateIP(node: string): string {
    const i = this.scenario.nodes.indexOf(node);
    const host = this.nextHost.get(node) ?? 10;
    if (host > 254) this.fail('cluster', `node ${node} ran out of pod addresses`);
    this.nextHost.set(node, host + 1);
    return `10.244.${i + 1}.${host}`;
  }

  private resolvePlaceholders(manifest: unknown, field: string): unknown {
    const text = JSON.stringify(manifest).replace(/\$\{(podIP|nodeCIDR):([^}]*)\}/g, (_m, kind: string, arg: string) => {
      if (kind === 'podIP') {
        const info = this.podInfo.get(arg);
        if (!info) this.fail(field, `\${podIP:${arg}}: no pod ${arg} at this step`);
        return info!.ip;
      }
      const i = this.scenario.nodes.indexOf(arg);
      if (i < 0) this.fail(field, `\${nodeCIDR:${arg}}: no node ${arg}`);
      return nodeCIDR(i);
    });
    return JSON.parse(text);
  }
}

export function nodeCIDR(index: number): string {
  return `10.244.${index + 1}.0/24`;
}

function nodeObject(name: string, podCIDR: string): V1Node {
  return { apiVersion: 'v1', kind: 'Node', metadata: { name }, spec: { podCIDR, podCIDRs: [podCIDR] } };
}

function namespaceObject(name: string, labels: Record<string, string>): V1Namespace {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels: { ...labels, 'kubernetes.io/metadata.name': name } } };
}

function podObject(spec: PodSpec, ip: string): V1Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { namespace: spec.namespace, name: spec.name, labels: { ...spec.labels } },
    spec: {
      nodeName: spec.node,
      containers: [{ name: 'serve', image: 'fencer.test/serve', ports: spec.ports.map((p) => ({ name: p.name, containerPort: p.port, protocol: p.protocol })) }],
    },
    status: { phase: 'Running', podIP: ip, podIPs: [{ ip }] },
  };
}
