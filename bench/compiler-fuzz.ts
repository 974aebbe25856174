// Fuzzing the compiler at the edges of what the apiserver accepts: random small clusters whose
// policies use the longest label keys and values, every allowed label character, ports 1 and 65535,
// endPort ranges (also below port, and port 0: both models must then match nothing), IPv6 blocks,
// /0 blocks and overlapping excepts. Each case is compiled, and:
//  - the compiled rules (CompiledEvaluator) must allow exactly what the oracle allows, for every
//    pair of addresses, for every probe port and protocol;
//  - the Linux restore payloads of every node must match a strict grammar (checkPayloads): set and
//    chain names are hashes, comments carry only ids and addresses, no user text gets in.
// Used by test/property/fuzz-compiler.test.ts (CI) and bench/fuzz.ts (≥ 100k cases).
import fc from 'fast-check';
import type { V1LabelSelector, V1NetworkPolicy, V1NetworkPolicyPeer, V1NetworkPolicyPort } from '@kubernetes/client-node';
import type { CompiledPolicySetSpec } from '../crds/types.ts';
import { planApply } from '../agent/dataplane/linux/plan.ts';
import { CompiledEvaluator } from '../matrix/evaluate-compiled.ts';
import type { ClusterSnapshot, Protocol, V1Namespace, V1Node, V1Pod } from '../model/cluster.ts';
import { PolicyCompiler } from '../operator/compile/compiler.ts';
import { normalizePolicy } from '../operator/compile/policy.ts';
import { oracleVerdict } from '../oracle/oracle.ts';

export const NODES = ['node-1', 'node-2'];
const NAMESPACES = ['x', 'y-z-0', `ns-${'x'.repeat(60)}`];

// Label keys: an optional DNS-subdomain prefix of up to 253 characters, then a name of up to 63 of [A-Za-z0-9-_.].
const LONG_PREFIX = `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}`;
export const LONG_KEY = `${LONG_PREFIX}/A-_.${'z'.repeat(58)}9`;
export const LONG_VALUE = `Z9-_.${'v'.repeat(57)}0`;
export const ODD_VALUE = 'A-b_C.d-E_f.0';
const KEYS = ['pod', 'app.kubernetes.io/name', LONG_KEY];
const VALUES = ['a', 'b', '', LONG_VALUE, ODD_VALUE];

const labels = fc.dictionary(fc.constantFrom(...KEYS), fc.constantFrom(...VALUES), { maxKeys: 2 });

const expression = fc.oneof(
  fc.record({ key: fc.constantFrom(...KEYS), operator: fc.constantFrom('In', 'NotIn'), values: fc.uniqueArray(fc.constantFrom(...VALUES), { minLength: 1, maxLength: 3 }) }),
  fc.record({ key: fc.constantFrom(...KEYS), operator: fc.constantFrom('Exists', 'DoesNotExist') }),
);

const selector: fc.Arbitrary<V1LabelSelector> = fc.record({ matchLabels: labels, matchExpressions: fc.array(expression, { maxLength: 2 }) }, { requiredKeys: [] });

const nsSelector: fc.Arbitrary<V1LabelSelector> = fc.oneof(
  fc.record({ matchLabels: fc.dictionary(fc.constantFrom('kubernetes.io/metadata.name', LONG_KEY), fc.constantFrom(...NAMESPACES, LONG_VALUE), { maxKeys: 1 }) }, { requiredKeys: [] }),
  fc.record({ matchExpressions: fc.array(fc.record({ key: fc.constantFrom('kubernetes.io/metadata.name', LONG_KEY), operator: fc.constantFrom('In', 'NotIn', 'Exists'), values: fc.uniqueArray(fc.constantFrom(...NAMESPACES, LONG_VALUE), { minLength: 1, maxLength: 2 }) }).map((e) => (e.operator === 'Exists' ? { key: e.key, operator: e.operator } : e)), { maxLength: 2 }) }),
);

const V4 = fc.oneof(
  fc.constantFrom('0.0.0.0/0', '10.0.0.0/8', '10.244.0.0/16', '10.244.1.0/24', '10.244.2.0/24', '192.168.0.0/16', '128.0.0.0/1', '255.255.255.255/32', '0.0.0.0/32'),
  fc.tuple(fc.constantFrom(1, 2), fc.integer({ min: 8, max: 15 }), fc.constantFrom(25, 28, 30, 31, 32)).map(([n, h, p]) => `10.244.${n}.${h}/${p}`),
);
// Excepts may overlap, nest and repeat; now and then one equals the block or lies outside it (the
// apiserver refuses those). IPv6 blocks carry IPv6 excepts inside them.
const V4_EXCEPTS = fc.array(V4.filter((c) => !c.endsWith('/0')), { maxLength: 4 });
const ipBlock = fc.oneof(
  { weight: 8, arbitrary: fc.tuple(V4, V4_EXCEPTS).map(([cidr, except]) => ({ cidr, except: except.filter((e) => strictSubset(e, cidr)) })) },
  { weight: 1, arbitrary: fc.record({ cidr: V4, except: V4_EXCEPTS }) },
  { weight: 1, arbitrary: fc.record({ cidr: fc.constantFrom('fd00::/8', '::/0'), except: fc.array(fc.constantFrom('fd00::/16', 'fd00:1::/32'), { maxLength: 2 }) }, { requiredKeys: ['cidr'] }) },
  { weight: 1, arbitrary: fc.record({ cidr: fc.constantFrom('2001:db8::/32', '::ffff:10.244.1.10/128', 'fe80::1/128') }) },
);

const peer: fc.Arbitrary<V1NetworkPolicyPeer> = fc.oneof(
  fc.record({ podSelector: selector }),
  fc.record({ namespaceSelector: nsSelector }),
  fc.record({ podSelector: selector, namespaceSelector: nsSelector }),
  fc.record({ ipBlock }),
);

const protocol = fc.constantFrom<Protocol | undefined>(undefined, 'TCP', 'UDP', 'SCTP');
const VALID_PORTS = [1, 53, 80, 81, 1024, 65534, 65535];
const validPort: fc.Arbitrary<V1NetworkPolicyPort> = fc.oneof<fc.Arbitrary<V1NetworkPolicyPort>[]>(
  fc.record({ protocol }, { requiredKeys: [] }),
  fc.record({ protocol, port: fc.constantFrom(...VALID_PORTS) }, { requiredKeys: ['port'] }),
  fc.record({ protocol, port: fc.constantFrom(...VALID_PORTS), endPort: fc.constantFrom(...VALID_PORTS) }, { requiredKeys: ['port', 'endPort'] })
    .filter((p) => (p.endPort as number) >= (p.port as number)),
  fc.record({ protocol, port: fc.constantFrom('serve-1', 'serve-65535', 'http', 'missing') }, { requiredKeys: ['port'] }),
);
// What the apiserver refuses but the compiler must still handle without widening anything: port 0,
// endPort below port, endPort on a named port, endPort without port.
const refusedPort: fc.Arbitrary<V1NetworkPolicyPort> = fc.oneof<fc.Arbitrary<V1NetworkPolicyPort>[]>(
  fc.record({ protocol, port: fc.constant(0), endPort: fc.option(fc.constantFrom(80, 65535), { nil: undefined }) }, { requiredKeys: ['port'] }),
  fc.record({ protocol, port: fc.constantFrom(81, 65535), endPort: fc.constantFrom(1, 80) }, { requiredKeys: ['port', 'endPort'] }),
  fc.record({ protocol, port: fc.constantFrom('http', 'serve-1'), endPort: fc.constantFrom(81, 65535) }, { requiredKeys: ['port', 'endPort'] }),
  fc.record({ protocol, endPort: fc.constantFrom(80, 65535) }, { requiredKeys: ['endPort'] }),
);
const port = fc.oneof({ weight: 24, arbitrary: validPort }, { weight: 1, arbitrary: refusedPort });

export interface RuleParts { peers?: V1NetworkPolicyPeer[]; ports?: V1NetworkPolicyPort[] }
export interface PolicyParts { namespace: string; podSelector: V1LabelSelector; policyTypes?: string[]; ingress?: RuleParts[]; egress?: RuleParts[] }

/** Rules of up to three peers and three ports (either may be absent), from the given arbitraries. */
export function ruleParts(peer: fc.Arbitrary<V1NetworkPolicyPeer>, port: fc.Arbitrary<V1NetworkPolicyPort>): fc.Arbitrary<RuleParts> {
  return fc.record({ peers: fc.option(fc.array(peer, { maxLength: 3 }), { nil: undefined }), ports: fc.option(fc.array(port, { maxLength: 3 }), { nil: undefined }) }, { requiredKeys: [] });
}

/** The NetworkPolicy the parts describe; absent lists stay absent, as the API tells them apart from empty ones. */
export function assemblePolicy(name: string, p: PolicyParts): V1NetworkPolicy {
  const spec: V1NetworkPolicy['spec'] = { podSelector: p.podSelector };
  if (p.policyTypes) spec.policyTypes = p.policyTypes;
  if (p.ingress) spec.ingress = p.ingress.map((r) => ({ ...(r.peers ? { from: r.peers } : {}), ...(r.ports ? { ports: r.ports } : {}) })) as never;
  if (p.egress) spec.egress = p.egress.map((r) => ({ ...(r.peers ? { to: r.peers } : {}), ...(r.ports ? { ports: r.ports } : {}) }));
  return { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { namespace: p.namespace, name }, spec };
}

const rule = ruleParts(peer, port);

function policy(name: string): fc.Arbitrary<V1NetworkPolicy> {
  return fc.record({
    namespace: fc.constantFrom(...NAMESPACES),
    podSelector: fc.oneof(fc.constant({}), selector),
    policyTypes: fc.option(fc.subarray(['Ingress', 'Egress']), { nil: undefined }),
    ingress: fc.option(fc.array(rule, { maxLength: 4 }), { nil: undefined }),
    egress: fc.option(fc.array(rule, { maxLength: 4 }), { nil: undefined }),
  }).map((p) => assemblePolicy(name, p));
}

const podPorts = fc.subarray([
  { name: 'serve-1', containerPort: 1, protocol: 'TCP' as Protocol },
  { name: 'serve-65535', containerPort: 65535, protocol: 'UDP' as Protocol },
  { name: 'http', containerPort: 80, protocol: 'TCP' as Protocol },
  { name: 'sctp-81', containerPort: 81, protocol: 'SCTP' as Protocol },
  { containerPort: 53, protocol: 'UDP' as Protocol },
]);

export const edgeCluster: fc.Arbitrary<ClusterSnapshot> = fc.record({
  nsLabels: fc.tuple(...NAMESPACES.map(() => fc.dictionary(fc.constantFrom(LONG_KEY), fc.constantFrom(LONG_VALUE, ODD_VALUE), { maxKeys: 1 }))),
  pods: fc.array(fc.record({ namespace: fc.constantFrom(...NAMESPACES), labels, node: fc.constantFrom(...NODES), ports: podPorts }), { minLength: 1, maxLength: 6 }),
  policyCount: fc.integer({ min: 0, max: 4 }),
}).chain(({ nsLabels, pods, policyCount }) =>
  fc.tuple(...Array.from({ length: policyCount }, (_, i) => policy(`p${i}.with-dots-and-dashes`))).map((policies) => {
    const namespaces: V1Namespace[] = NAMESPACES.map((n, i) => ({ metadata: { name: n, labels: { 'kubernetes.io/metadata.name': n, ...nsLabels[i] } } }));
    const nodes: V1Node[] = NODES.map((n, i) => ({ metadata: { name: n }, spec: { podCIDR: `10.244.${i + 1}.0/24` } }));
    const v1pods: V1Pod[] = pods.map((p, i) => ({
      metadata: { namespace: p.namespace, name: `pod-${i}.x`, labels: p.labels },
      spec: { nodeName: p.node, containers: [{ name: 'c', image: 'i', ports: p.ports }] },
      status: { phase: 'Running', podIP: `10.244.${NODES.indexOf(p.node) + 1}.${10 + i}` },
    }));
    return { namespaces, nodes, pods: v1pods, policies };
  }));

export const EDGE_PROBES: Array<{ protocol: Protocol; port: number }> = [
  { protocol: 'TCP', port: 1 }, { protocol: 'TCP', port: 80 }, { protocol: 'TCP', port: 65535 }, { protocol: 'UDP', port: 53 },
  { protocol: 'UDP', port: 65535 }, { protocol: 'SCTP', port: 81 }, { protocol: 'TCP', port: 1024 },
];

export function edgeAddresses(c: ClusterSnapshot): string[] {
  return [...c.pods.map((p) => p.status!.podIP!), '10.244.1.200', '192.168.1.1', '255.255.255.255', '8.8.8.8'];
}

const IP = String.raw`\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}`;
const SET = String.raw`FENCER-[ptn]-[0-9a-f]{16}(?:-1)?`;
const CHAIN = String.raw`FENCER-(?:FORWARD|(?:TOP|INGRESS|EGRESS|[IE]-[0-9a-f]{16})(?:-1)?)`;
const RULE_LINE = new RegExp(String.raw`^(?:-A ${CHAIN}|-I FENCER-FORWARD 1) (?:-[sd] ${IP}/32 )?(?:-p (?:tcp|udp|sctp) )?(?:-m set --match-set ${SET} (?:src|dst) )?`
  + String.raw`(?:-m (?:tcp|udp|sctp) --dport \d{1,5}(?::\d{1,5})? |-m set --match-set ${SET} dst,dst )?`
  + String.raw`-m comment --comment "fencer:[0-9a-f]{16} (?:tree|egress|ingress|t-[0-9a-f]{16} ${IP}|r-[0-9a-f]{16}|default deny t-[0-9a-f]{16})" -[jg] (?:RETURN|DROP|${CHAIN})$`);
const MEMBER = String.raw`${IP}(?:/\d{1,2}|,(?:tcp|udp|sctp):\d{1,5})?`;
const IPSET_LINE = new RegExp(String.raw`^(?:create ${SET} hash:(?:ip|net|ip,port) family inet hashsize 1024 maxelem \d+|add ${SET} ${MEMBER}|del ${SET} ${MEMBER}|destroy ${SET})$`);
const TABLE_LINE = new RegExp(String.raw`^(?:\*filter|COMMIT|:${CHAIN} - \[0:0\]|-X ${CHAIN})$`);

/** Lines of the restore payloads for `spec` (applied to an empty kernel) that break the grammar. */
export function payloadProblems(spec: CompiledPolicySetSpec): string[] {
  const plan = planApply(spec, { sets: new Map(), chains: new Map(), forward: [] });
  const bad: string[] = [];
  for (const line of plan.ipset.split('\n').filter(Boolean)) if (!IPSET_LINE.test(line)) bad.push(`ipset: ${line}`);
  for (const line of plan.iptables.split('\n').filter(Boolean)) if (!TABLE_LINE.test(line) && !RULE_LINE.test(line)) bad.push(`iptables: ${line}`);
  return bad;
}

function v4(text: string): { net: number; len: number } | undefined {
  const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)\/(\d+)$/.exec(text);
  if (!m) return undefined;
  const len = Number(m[5]);
  const ip = ((Number(m[1]) << 24) >>> 0) + (Number(m[2]) << 16) + (Number(m[3]) << 8) + Number(m[4]);
  const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
  return { net: (ip & mask) >>> 0, len };
}

function strictSubset(except: string, cidr: string): boolean {
  const base = v4(cidr);
  const x = v4(except);
  if (!base || !x || x.len <= base.len) return false;
  const mask = base.len === 0 ? 0 : (0xffffffff << (32 - base.len)) >>> 0;
  return ((x.net & mask) >>> 0) === base.net;
}

/** Port problems the apiserver refuses (port 0, endPort below port or without a numeric port, above 65535). */
export function invalidPorts(p: V1NetworkPolicy, effectiveOnly = false): boolean {
  const types = p.spec?.policyTypes?.length ? p.spec.policyTypes : ['Ingress', ...(p.spec?.egress?.length ? ['Egress'] : [])];
  const rules = [...(!effectiveOnly || types.includes('Ingress') ? p.spec?.ingress ?? [] : []), ...(!effectiveOnly || types.includes('Egress') ? p.spec?.egress ?? [] : [])];
  return rules.some((r) => (r.ports ?? []).some((x) => {
    if (typeof x.port === 'number' && (x.port < 1 || x.port > 65535)) return true;
    if (x.endPort === undefined || x.endPort === null) return false;
    return typeof x.port !== 'number' || x.endPort < x.port || x.endPort > 65535;
  }));
}

/** What the apiserver's validation would refuse in a policy: invalid ports, excepts that are not strict subsets of their block. */
export function apiserverValid(p: V1NetworkPolicy): boolean {
  if (invalidPorts(p)) return false;
  const peers = [...(p.spec?.ingress ?? []).flatMap((r) => (r as { from?: V1NetworkPolicyPeer[] }).from ?? []), ...(p.spec?.egress ?? []).flatMap((r) => r.to ?? [])];
  return peers.every((peer) => {
    const block = peer.ipBlock;
    if (!block || block.cidr.includes(':')) return true;
    return (block.except ?? []).every((e) => strictSubset(e, block.cidr));
  });
}

/**
 * One fuzz case: undefined when all is well. Policies the apiserver would accept must compile to
 * rules that allow exactly what the oracle allows; with ones it would refuse (these reach the
 * compiler only from offline manifests), the compiled rules may allow less, never more, and every
 * refused port is reported in a diagnostic.
 */
export function checkCase(c: ClusterSnapshot): string | undefined {
  const valid = c.policies.every(apiserverValid);
  for (const p of c.policies) {
    if (invalidPorts(p, true) && !normalizePolicy(p).diagnostics.some((d) => /port/.test(d))) return `policy ${p.metadata?.name}: an invalid port without a diagnostic`;
  }
  const specs = PolicyCompiler.compile(c);
  for (const spec of specs.values()) {
    const bad = payloadProblems(spec);
    if (bad.length) return `node ${spec.nodeName}: restore payload outside the grammar: ${bad.slice(0, 3).join(' | ')}`;
  }
  const evaluator = new CompiledEvaluator(specs.values());
  const ips = edgeAddresses(c);
  for (const srcIP of ips) for (const dstIP of ips) for (const probe of EDGE_PROBES) {
    const flow = { srcIP, dstIP, ...probe };
    const expected = oracleVerdict(c, flow).allowed;
    const allowed = evaluator.allows(flow);
    if (allowed !== expected && (valid || allowed)) return `${srcIP} → ${dstIP} ${probe.protocol}/${probe.port}: oracle says ${expected ? 'allowed' : 'denied'}, compiled rules the opposite${valid ? '' : ' (with policies the apiserver would refuse)'}`;
  }
  return undefined;
}

export interface FuzzResult { cases: number; refusedByApiserver: number; mismatches: number; ms: number; seed: number; firstFailure?: string }

/** Runs `cases` random edge clusters; counts mismatches instead of stopping at the first one. */
export function fuzzCompiler(cases: number, seed = Date.now() % 2 ** 31): FuzzResult {
  const started = performance.now();
  let mismatches = 0;
  let refusedByApiserver = 0;
  let firstFailure: string | undefined;
  fc.assert(fc.property(edgeCluster, (c) => {
    if (!c.policies.every(apiserverValid)) refusedByApiserver++;
    let problem: string | undefined;
    try {
      problem = checkCase(c);
    } catch (e) {
      problem = `crash: ${(e as Error).stack ?? e}`;
    }
    if (problem) {
      mismatches++;
      firstFailure ??= `${problem}\n${JSON.stringify(c.policies)}`;
    }
    return true;
  }), { numRuns: cases, seed });
  return { cases, refusedByApiserver, mismatches, ms: performance.now() - started, seed, firstFailure };
}
