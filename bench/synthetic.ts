// Synthetic clusters for benchmarks: namespaces of ~100 pods, policies spread evenly over them and
// mixing the shapes real clusters use (default deny, same-namespace allow, cross-namespace allow by
// labels, ipBlock with except, named ports, egress).
import type { V1NetworkPolicy } from '@kubernetes/client-node';
import type { ClusterSnapshot, V1Pod } from '../model/cluster.ts';

export interface SyntheticSize { pods: number; policies: number; nodes: number }

const APPS = 10;

export function syntheticCluster(size: SyntheticSize): ClusterSnapshot {
  const namespaceCount = Math.max(1, Math.round(size.pods / 100));
  const namespaces = Array.from({ length: namespaceCount }, (_, i) => ({ metadata: { name: `ns-${i}`, labels: { team: `t${i % 5}` } } }));
  const nodes = Array.from({ length: size.nodes }, (_, i) => ({ metadata: { name: `node-${i}` }, spec: { podCIDR: podCIDR(i) } }));
  const pods = Array.from({ length: size.pods }, (_, i) => syntheticPod(i, namespaceCount, size.nodes));
  const policies = Array.from({ length: size.policies }, (_, i) => syntheticPolicy(i, namespaceCount));
  return { namespaces, nodes, pods, policies };
}

export function podCIDR(node: number): string {
  return `10.${64 + Math.floor(node / 256)}.${node % 256}.0/24`;
}

export function syntheticPod(i: number, namespaceCount: number, nodeCount: number, labelSalt = 0): V1Pod {
  const node = i % nodeCount;
  const host = Math.floor(i / nodeCount) + 2;
  return {
    metadata: { namespace: `ns-${i % namespaceCount}`, name: `pod-${i}`, labels: { app: `app-${(i + labelSalt) % APPS}`, tier: `tier-${i % 3}` } },
    spec: { nodeName: `node-${node}`, containers: [{ name: 'c', image: 'i', ports: [{ name: 'http', containerPort: 8000 + (i % 3) }] }] },
    status: { phase: 'Running', podIP: `10.${64 + Math.floor(node / 256)}.${node % 256}.${host}` },
  };
}

export function syntheticPolicy(i: number, namespaceCount: number, variant = 0): V1NetworkPolicy {
  const ns = `ns-${i % namespaceCount}`;
  const app = `app-${(i + variant) % APPS}`;
  const shape = i % 5;
  const podSelector = shape === 0 ? {} : { matchLabels: { app } };
  const spec: V1NetworkPolicy['spec'] = { podSelector };
  if (shape === 0) spec.policyTypes = ['Ingress'];
  if (shape === 1) spec.ingress = [{ _from: [{ podSelector: { matchLabels: { app: `app-${(i + 1) % APPS}` } } }], ports: [{ port: 8080 }] }];
  if (shape === 2) spec.ingress = [{ _from: [{ namespaceSelector: { matchLabels: { team: `t${i % 5}` } }, podSelector: { matchExpressions: [{ key: 'tier', operator: 'In', values: ['tier-1', 'tier-2'] }] } }] }];
  if (shape === 3) spec.ingress = [{ _from: [{ ipBlock: { cidr: '10.64.0.0/10', except: [`10.64.${i % 200}.0/24`] } }], ports: [{ port: 'http' }] }];
  if (shape === 4) {
    spec.egress = [{ to: [{ namespaceSelector: { matchLabels: { team: `t${(i + 2) % 5}` } } }], ports: [{ protocol: 'UDP', port: 53 }, { port: 8000, endPort: 8002 }] }];
    spec.policyTypes = ['Egress'];
  }
  return { metadata: { namespace: ns, name: `policy-${i}` }, spec };
}
