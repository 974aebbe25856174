// Random small clusters and policies for property tests: few labels and values so selectors,
// peers and named ports collide often enough to exercise every corner.
import fc from 'fast-check';
import type { V1LabelSelector, V1NetworkPolicy, V1NetworkPolicyPeer, V1NetworkPolicyPort } from '@kubernetes/client-node';
import type { ClusterSnapshot, Protocol, V1Namespace, V1Node, V1Pod } from '../../model/cluster.ts';
import { assemblePolicy, ruleParts } from '../../bench/compiler-fuzz.ts';

export const NODES = ['node-1', 'node-2'];
const NAMESPACES = ['x', 'y', 'z'];
const KEYS = ['pod', 'role'];
const VALUES = ['a', 'b', 'c'];

const labels = fc.dictionary(fc.constantFrom(...KEYS), fc.constantFrom(...VALUES), { maxKeys: 2 });

const expression = fc.oneof(
  fc.record({ key: fc.constantFrom(...KEYS, 'ns'), operator: fc.constantFrom('In', 'NotIn'), values: fc.uniqueArray(fc.constantFrom(...VALUES, 'x', 'y'), { minLength: 1, maxLength: 2 }) }),
  fc.record({ key: fc.constantFrom(...KEYS, 'ns'), operator: fc.constantFrom('Exists', 'DoesNotExist') }),
);

export const selector: fc.Arbitrary<V1LabelSelector> = fc.record(
  { matchLabels: labels, matchExpressions: fc.array(expression, { maxLength: 2 }) },
  { requiredKeys: [] },
);

const nsSelector: fc.Arbitrary<V1LabelSelector> = fc.oneof(
  fc.record({ matchLabels: fc.dictionary(fc.constantFrom('ns', 'kubernetes.io/metadata.name', 'team'), fc.constantFrom(...NAMESPACES, 'blue'), { maxKeys: 1 }) }, { requiredKeys: [] }),
  fc.record({ matchExpressions: fc.array(fc.record({ key: fc.constantFrom('ns', 'team'), operator: fc.constantFrom('In', 'NotIn'), values: fc.uniqueArray(fc.constantFrom(...NAMESPACES, 'blue'), { minLength: 1, maxLength: 2 }) }), { maxLength: 1 }) }),
);

// Pod IPs are 10.244.<node>.<10..15>; blocks around them hit pods, parts of pods and nothing.
const cidr = fc.oneof(
  fc.constantFrom('0.0.0.0/0', '10.0.0.0/8', '10.244.1.0/24', '10.244.2.0/24', '10.244.0.0/16', '192.168.0.0/16'),
  fc.tuple(fc.constantFrom(1, 2), fc.integer({ min: 8, max: 15 }), fc.constantFrom(29, 30, 31, 32)).map(([n, h, p]) => `10.244.${n}.${h}/${p}`),
);

const peer: fc.Arbitrary<V1NetworkPolicyPeer> = fc.oneof(
  fc.record({ podSelector: selector }),
  fc.record({ namespaceSelector: nsSelector }),
  fc.record({ podSelector: selector, namespaceSelector: nsSelector }),
  fc.record({ ipBlock: fc.record({ cidr, except: fc.array(cidr.filter((c) => !c.endsWith('/0')), { maxLength: 2 }) }, { requiredKeys: ['cidr'] }) }),
);

const protocol = fc.constantFrom<Protocol | undefined>(undefined, 'TCP', 'UDP', 'SCTP');

const port: fc.Arbitrary<V1NetworkPolicyPort> = fc.oneof<fc.Arbitrary<V1NetworkPolicyPort>[]>(
  fc.record({ protocol }, { requiredKeys: [] }),
  fc.record({ protocol, port: fc.constantFrom(53, 80, 81) }, { requiredKeys: ['port'] }),
  fc.record({ protocol, port: fc.constantFrom(53, 79, 80), endPort: fc.constantFrom(80, 81, 90) }, { requiredKeys: ['port', 'endPort'] }),
  fc.record({ protocol, port: fc.constantFrom('serve-80-tcp', 'serve-81-udp', 'http', 'missing') }, { requiredKeys: ['port'] }),
).filter((p: V1NetworkPolicyPort) => typeof p.port !== 'number' || p.endPort === undefined || p.endPort >= p.port);

const rule = ruleParts(peer, port);

export const policy = (name: string): fc.Arbitrary<V1NetworkPolicy> =>
  fc.record({
    namespace: fc.constantFrom(...NAMESPACES),
    podSelector: fc.oneof(fc.constant({}), selector, fc.record({ matchLabels: fc.dictionary(fc.constantFrom(...KEYS), fc.constantFrom(...VALUES), { minKeys: 1, maxKeys: 1 }) })),
    policyTypes: fc.option(fc.subarray(['Ingress', 'Egress']), { nil: undefined }),
    ingress: fc.option(fc.array(rule, { maxLength: 3 }), { nil: undefined }),
    egress: fc.option(fc.array(rule, { maxLength: 3 }), { nil: undefined }),
  }).map((p) => assemblePolicy(name, p));

const podPorts = fc.record({
  standard: fc.boolean(),
  http: fc.option(fc.tuple(fc.constantFrom(80, 81), fc.constantFrom<Protocol>('TCP', 'UDP')), { nil: undefined }),
}).map(({ standard, http }) => [
  ...(standard ? [80, 81].flatMap((n) => (['TCP', 'UDP', 'SCTP'] as const).map((pr) => ({ name: `serve-${n}-${pr.toLowerCase()}`, containerPort: n, protocol: pr }))) : []),
  ...(http ? [{ name: 'http', containerPort: http[0], protocol: http[1] }] : []),
]);

export const cluster: fc.Arbitrary<ClusterSnapshot> = fc.record({
  nsLabels: fc.tuple(...NAMESPACES.map(() => fc.dictionary(fc.constantFrom('team'), fc.constantFrom('blue', 'red'), { maxKeys: 1 }))),
  pods: fc.array(fc.record({ namespace: fc.constantFrom('x', 'x', 'y', 'z'), labels, node: fc.constantFrom(...NODES), ports: podPorts, hostNetwork: fc.integer({ min: 0, max: 9 }).map((n) => n === 0) }), { minLength: 1, maxLength: 6 }),
  policyCount: fc.integer({ min: 0, max: 5 }),
}).chain(({ nsLabels, pods, policyCount }) =>
  fc.tuple(...Array.from({ length: policyCount }, (_, i) => policy(`p${i}`))).map((policies) => {
    const namespaces: V1Namespace[] = NAMESPACES.map((n, i) => ({ metadata: { name: n, labels: { ns: n, ...nsLabels[i] } } }));
    const nodes: V1Node[] = NODES.map((n, i) => ({ metadata: { name: n }, spec: { podCIDR: `10.244.${i + 1}.0/24` } }));
    const v1pods: V1Pod[] = pods.map((p, i) => ({
      metadata: { namespace: p.namespace, name: `pod${i}`, labels: p.labels },
      spec: { nodeName: p.node, hostNetwork: p.hostNetwork || undefined, containers: [{ name: 'c', image: 'i', ports: p.ports }] },
      status: { phase: 'Running', podIP: `10.244.${NODES.indexOf(p.node) + 1}.${10 + i}` },
    }));
    return { namespaces, nodes, pods: v1pods, policies };
  }));

export const PROBES: Array<{ protocol: Protocol; port: number }> = [
  { protocol: 'TCP', port: 80 }, { protocol: 'TCP', port: 81 }, { protocol: 'UDP', port: 80 }, { protocol: 'UDP', port: 81 },
  { protocol: 'SCTP', port: 81 }, { protocol: 'TCP', port: 53 },
];

/** Every address a flow may use: the pods' and two outside any pod CIDR or pod. */
export function addresses(c: ClusterSnapshot): string[] {
  return [...c.pods.map((p) => p.status!.podIP!), '10.244.1.200', '192.168.1.1'];
}
