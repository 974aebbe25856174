import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { V1NetworkPolicySpec, V1ContainerPort, V1LabelSelectorRequirement } from '@kubernetes/client-node';
import type { ClusterSnapshot, Flow, Protocol, V1Namespace, V1NetworkPolicy, V1Pod } from '../../model/cluster.ts';
import { oracleAllows, oracleVerdict } from '../../oracle/oracle.ts';
import { ipBlockMatches } from '../../oracle/peers.ts';
import { selectorMatches } from '../../oracle/selectors.ts';

// ---- tiny cluster builders ----

function ns(name: string, labels: Record<string, string> = {}): V1Namespace {
  return { metadata: { name, labels } };
}

function pod(
  namespace: string,
  name: string,
  ip: string,
  labels: Record<string, string> = {},
  ports: V1ContainerPort[] = [],
): V1Pod {
  return {
    metadata: { namespace, name, labels },
    spec: { containers: [{ name: 'c', ports }] },
    status: { phase: 'Running', podIP: ip },
  };
}

function policy(namespace: string, name: string, spec: V1NetworkPolicySpec): V1NetworkPolicy {
  return { metadata: { namespace, name }, spec };
}

function cluster(parts: Partial<ClusterSnapshot>): ClusterSnapshot {
  return { namespaces: [], pods: [], nodes: [], policies: [], ...parts };
}

function flow(srcIP: string, dstIP: string, port = 80, protocol: Protocol = 'TCP'): Flow {
  return { srcIP, dstIP, port, protocol };
}

const EXTERNAL = '203.0.113.9';

// A default namespace "a" with a client and a server, plus namespace "b" with its own client.
function base(policies: V1NetworkPolicy[], extraPods: V1Pod[] = []): ClusterSnapshot {
  return cluster({
    namespaces: [ns('a', { team: 'alpha' }), ns('b', { team: 'beta' })],
    pods: [
      pod('a', 'client', '10.0.0.1', { app: 'client' }),
      pod('a', 'server', '10.0.0.2', { app: 'server' }, [
        { name: 'http', containerPort: 8080 },
        { name: 'dns', containerPort: 53, protocol: 'UDP' },
      ]),
      pod('b', 'client', '10.0.1.1', { app: 'client' }),
      ...extraPods,
    ],
    policies,
  });
}

const CLIENT_A = '10.0.0.1';
const SERVER_A = '10.0.0.2';
const CLIENT_B = '10.0.1.1';

const ingressOnServer = (ingress: V1NetworkPolicySpec['ingress']): V1NetworkPolicy =>
  policy('a', 'p', { podSelector: { matchLabels: { app: 'server' } }, ingress });

// ---- identity and isolation ----

test('with no policies every flow is allowed', () => {
  const c = base([]);
  const v = oracleVerdict(c, flow(CLIENT_A, SERVER_A));
  assert.equal(v.allowed, true);
  assert.equal(v.egress.isolated, false);
  assert.equal(v.ingress.isolated, false);
});

test('a pod may always talk to itself, even when isolated in both directions', () => {
  const c = base([policy('a', 'deny', { podSelector: {}, policyTypes: ['Ingress', 'Egress'] })]);
  assert.equal(oracleAllows(c, flow(SERVER_A, SERVER_A)), true);
  assert.equal(oracleAllows(c, flow(CLIENT_A, SERVER_A)), false);
});

test('an external address is never isolated', () => {
  const c = base([policy('a', 'deny', { podSelector: {}, policyTypes: ['Ingress', 'Egress'] })]);
  const v = oracleVerdict(c, flow(EXTERNAL, CLIENT_B));
  assert.equal(v.egress.isolated, false);
  assert.equal(v.allowed, true);
});

test('a hostNetwork pod address is external: never selected', () => {
  const host = pod('a', 'host', '10.0.0.50', { app: 'server' });
  host.spec!.hostNetwork = true;
  const c = base([policy('a', 'deny', { podSelector: {} })], [host]);
  assert.equal(oracleVerdict(c, flow(CLIENT_B, '10.0.0.50')).ingress.isolated, false);
  assert.equal(oracleAllows(c, flow(CLIENT_B, '10.0.0.50')), true);
});

test('a finished pod does not own its address', () => {
  const done = pod('a', 'done', '10.0.0.60', { app: 'server' });
  done.status!.phase = 'Succeeded';
  const c = base([policy('a', 'deny', { podSelector: {} })], [done]);
  assert.equal(oracleAllows(c, flow(CLIENT_B, '10.0.0.60')), true);
});

test('a policy with neither rules nor policyTypes isolates ingress only', () => {
  const c = base([policy('a', 'p', { podSelector: {} })]);
  const v = oracleVerdict(c, flow(CLIENT_A, SERVER_A));
  assert.equal(v.ingress.isolated, true);
  assert.equal(v.ingress.allowed, false);
  assert.equal(v.egress.isolated, false);
  assert.equal(oracleAllows(c, flow(CLIENT_A, CLIENT_B)), true);
});

test('a policy with egress rules and no policyTypes isolates both directions', () => {
  const c = base([policy('a', 'p', { podSelector: {}, egress: [{ to: [{ ipBlock: { cidr: '192.0.2.0/24' } }] }] })]);
  const v = oracleVerdict(c, flow(CLIENT_A, CLIENT_B));
  assert.equal(v.egress.isolated, true);
  assert.equal(v.egress.allowed, false);
  assert.equal(oracleVerdict(c, flow(CLIENT_B, SERVER_A)).ingress.isolated, true);
  assert.equal(oracleAllows(c, flow(CLIENT_A, '192.0.2.7')), true);
});

test('an empty egress list with no policyTypes does not isolate egress', () => {
  const c = base([policy('a', 'p', { podSelector: {}, egress: [] })]);
  assert.equal(oracleVerdict(c, flow(CLIENT_A, CLIENT_B)).egress.isolated, false);
});

test('explicit policyTypes Egress does not isolate ingress and ignores ingress rules', () => {
  const c = base([
    policy('a', 'p', {
      podSelector: {},
      policyTypes: ['Egress'],
      ingress: [{ _from: [{ ipBlock: { cidr: '10.255.0.0/16' } }] }],
    }),
  ]);
  const v = oracleVerdict(c, flow(CLIENT_B, SERVER_A));
  assert.equal(v.ingress.isolated, false);
  assert.equal(v.allowed, true);
  assert.equal(oracleAllows(c, flow(CLIENT_A, CLIENT_B)), false);
});

test('policyTypes Ingress and Egress with no rules denies everything both ways', () => {
  const c = base([policy('a', 'p', { podSelector: {}, policyTypes: ['Ingress', 'Egress'] })]);
  assert.equal(oracleAllows(c, flow(CLIENT_A, CLIENT_B)), false);
  assert.equal(oracleAllows(c, flow(CLIENT_B, CLIENT_A)), false);
  assert.equal(oracleAllows(c, flow(CLIENT_A, SERVER_A)), false);
});

test('an empty policyTypes list falls back to the defaults', () => {
  const c = base([policy('a', 'p', { podSelector: {}, policyTypes: [] })]);
  const v = oracleVerdict(c, flow(CLIENT_A, SERVER_A));
  assert.equal(v.ingress.isolated, true);
  assert.equal(v.egress.isolated, false);
});

test('a policy only isolates pods in its own namespace', () => {
  const c = base([policy('b', 'p', { podSelector: {} })]);
  assert.equal(oracleAllows(c, flow(CLIENT_B, SERVER_A)), true);
  assert.equal(oracleAllows(c, flow(CLIENT_A, CLIENT_B)), false);
});

test('a podSelector with labels isolates only the pods it matches', () => {
  const c = base([ingressOnServer([])]);
  assert.equal(oracleAllows(c, flow(CLIENT_B, SERVER_A)), false);
  assert.equal(oracleAllows(c, flow(CLIENT_B, CLIENT_A)), true);
  assert.deepEqual(oracleVerdict(c, flow(CLIENT_B, SERVER_A)).ingress.selectedBy, ['a/p']);
});

test('policies are a union: any selecting policy may allow, and all allowing rules are reported', () => {
  const c = base([
    policy('a', 'deny', { podSelector: {} }),
    policy('a', 'web', {
      podSelector: { matchLabels: { app: 'server' } },
      ingress: [{ ports: [{ port: 9999 }] }, { ports: [{ port: 80 }] }],
    }),
    policy('a', 'any', { podSelector: {}, ingress: [{}] }),
  ]);
  const v = oracleVerdict(c, flow(CLIENT_B, SERVER_A, 80));
  assert.equal(v.allowed, true);
  assert.deepEqual(v.ingress.selectedBy, ['a/deny', 'a/web', 'a/any']);
  assert.deepEqual(v.ingress.allowedBy, [
    { policy: 'a/web', index: 1 },
    { policy: 'a/any', index: 0 },
  ]);
});

test('a flow needs both egress on the source and ingress on the destination', () => {
  const c = base([
    policy('a', 'egress-open', { podSelector: {}, policyTypes: ['Egress'], egress: [{}] }),
    policy('b', 'ingress-closed', { podSelector: {} }),
  ]);
  const v = oracleVerdict(c, flow(CLIENT_A, CLIENT_B));
  assert.equal(v.egress.allowed, true);
  assert.equal(v.ingress.allowed, false);
  assert.equal(v.allowed, false);
});

// ---- rules ----

test('a rule with neither peers nor ports allows everything', () => {
  const c = base([ingressOnServer([{}])]);
  assert.equal(oracleAllows(c, flow(EXTERNAL, SERVER_A, 1, 'SCTP')), true);
});

test('an empty from list means any peer', () => {
  const c = base([ingressOnServer([{ _from: [], ports: [{ port: 80 }] }])]);
  assert.equal(oracleAllows(c, flow(EXTERNAL, SERVER_A, 80)), true);
  assert.equal(oracleAllows(c, flow(EXTERNAL, SERVER_A, 81)), false);
});

test('an empty ports list means any port and protocol', () => {
  const c = base([ingressOnServer([{ _from: [{ podSelector: {} }], ports: [] }])]);
  assert.equal(oracleAllows(c, flow(CLIENT_A, SERVER_A, 12345, 'UDP')), true);
  assert.equal(oracleAllows(c, flow(CLIENT_B, SERVER_A, 12345, 'UDP')), false);
});

test('a rule needs both a matching peer and a matching port', () => {
  const c = base([ingressOnServer([{ _from: [{ podSelector: { matchLabels: { app: 'client' } } }], ports: [{ port: 80 }] }])]);
  assert.equal(oracleAllows(c, flow(CLIENT_A, SERVER_A, 80)), true);
  assert.equal(oracleAllows(c, flow(CLIENT_A, SERVER_A, 443)), false);
  assert.equal(oracleAllows(c, flow(CLIENT_B, SERVER_A, 80)), false);
});

test('the wire name "from" is accepted as well as the client type\'s "_from"', () => {
  const rule = { from: [{ podSelector: { matchLabels: { app: 'client' } } }] } as unknown as { _from: [] };
  const c = base([ingressOnServer([rule])]);
  assert.equal(oracleAllows(c, flow(CLIENT_A, SERVER_A)), true);
  assert.equal(oracleAllows(c, flow(EXTERNAL, SERVER_A)), false);
});

// ---- peers ----

test('a podSelector-only peer matches pods in the policy namespace only', () => {
  const c = base([ingressOnServer([{ _from: [{ podSelector: { matchLabels: { app: 'client' } } }] }])]);
  assert.equal(oracleAllows(c, flow(CLIENT_A, SERVER_A)), true);
  assert.equal(oracleAllows(c, flow(CLIENT_B, SERVER_A)), false);
});

test('a namespaceSelector-only peer matches every pod in matching namespaces', () => {
  const c = base([ingressOnServer([{ _from: [{ namespaceSelector: { matchLabels: { team: 'beta' } } }] }])]);
  assert.equal(oracleAllows(c, flow(CLIENT_B, SERVER_A)), true);
  assert.equal(oracleAllows(c, flow(CLIENT_A, SERVER_A)), false);
});

test('podSelector and namespaceSelector in one peer are ANDed', () => {
  const other = pod('b', 'db', '10.0.1.2', { app: 'db' });
  const c = base(
    [
      ingressOnServer([
        { _from: [{ namespaceSelector: { matchLabels: { team: 'beta' } }, podSelector: { matchLabels: { app: 'client' } } }] },
      ]),
    ],
    [other],
  );
  assert.equal(oracleAllows(c, flow(CLIENT_B, SERVER_A)), true);
  assert.equal(oracleAllows(c, flow('10.0.1.2', SERVER_A)), false);
  assert.equal(oracleAllows(c, flow(CLIENT_A, SERVER_A)), false);
});

test('an empty namespaceSelector matches pods in all namespaces but no external address', () => {
  const c = base([ingressOnServer([{ _from: [{ namespaceSelector: {} }] }])]);
  assert.equal(oracleAllows(c, flow(CLIENT_A, SERVER_A)), true);
  assert.equal(oracleAllows(c, flow(CLIENT_B, SERVER_A)), true);
  assert.equal(oracleAllows(c, flow(EXTERNAL, SERVER_A)), false);
});

test('kubernetes.io/metadata.name is present even when the snapshot omits it', () => {
  const c = base([
    ingressOnServer([{ _from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'b' } } }] }]),
  ]);
  assert.equal(oracleAllows(c, flow(CLIENT_B, SERVER_A)), true);
  assert.equal(oracleAllows(c, flow(CLIENT_A, SERVER_A)), false);
});

test('a pod in a namespace missing from the snapshot still has its name label', () => {
  const stray = pod('c', 'stray', '10.0.2.1');
  const c = base(
    [ingressOnServer([{ _from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'c' } } }] }])],
    [stray],
  );
  assert.equal(oracleAllows(c, flow('10.0.2.1', SERVER_A)), true);
});

test('a peer with nothing set matches nothing', () => {
  const c = base([ingressOnServer([{ _from: [{}] }])]);
  assert.equal(oracleAllows(c, flow(CLIENT_A, SERVER_A)), false);
  assert.equal(oracleAllows(c, flow(EXTERNAL, SERVER_A)), false);
});

test('an ipBlock peer matches external addresses and pod addresses alike', () => {
  const c = base([ingressOnServer([{ _from: [{ ipBlock: { cidr: '0.0.0.0/0' } }] }])]);
  assert.equal(oracleAllows(c, flow(EXTERNAL, SERVER_A)), true);
  assert.equal(oracleAllows(c, flow(CLIENT_B, SERVER_A)), true);
});

test('ipBlock except removes addresses from that peer', () => {
  const c = base([ingressOnServer([{ _from: [{ ipBlock: { cidr: '10.0.0.0/16', except: ['10.0.1.0/24'] } }] }])]);
  assert.equal(oracleAllows(c, flow(CLIENT_A, SERVER_A)), true);
  assert.equal(oracleAllows(c, flow(CLIENT_B, SERVER_A)), false);
  assert.equal(oracleAllows(c, flow(EXTERNAL, SERVER_A)), false);
});

test('ipBlock except is not a deny when another rule allows', () => {
  const c = base([
    ingressOnServer([
      { _from: [{ ipBlock: { cidr: '10.0.0.0/16', except: ['10.0.1.0/24'] } }] },
      { _from: [{ namespaceSelector: { matchLabels: { team: 'beta' } } }] },
    ]),
  ]);
  const v = oracleVerdict(c, flow(CLIENT_B, SERVER_A));
  assert.equal(v.allowed, true);
  assert.deepEqual(v.ingress.allowedBy, [{ policy: 'a/p', index: 1 }]);
});

test('ipBlock except is not a deny when another peer of the same rule allows', () => {
  const c = base([
    ingressOnServer([{ _from: [{ ipBlock: { cidr: '10.0.0.0/8', except: ['10.0.1.1/32'] } }, { ipBlock: { cidr: '10.0.1.0/24' } }] }]),
  ]);
  assert.equal(oracleAllows(c, flow(CLIENT_B, SERVER_A)), true);
});

test('ipBlock CIDRs with host bits set are masked', () => {
  assert.equal(ipBlockMatches({ cidr: '10.0.0.77/24' }, '10.0.0.200'), true);
  assert.equal(ipBlockMatches({ cidr: '10.0.0.77/24' }, '10.0.1.1'), false);
  assert.equal(ipBlockMatches({ cidr: '10.0.0.0/8', except: ['10.1.2.3/16'] }, '10.1.200.1'), false);
});

test('ipBlock prefix edges: /0 matches everything, /32 exactly one address', () => {
  assert.equal(ipBlockMatches({ cidr: '0.0.0.0/0' }, '255.255.255.255'), true);
  assert.equal(ipBlockMatches({ cidr: '0.0.0.0/0' }, '0.0.0.0'), true);
  assert.equal(ipBlockMatches({ cidr: '10.0.0.1/32' }, '10.0.0.1'), true);
  assert.equal(ipBlockMatches({ cidr: '10.0.0.1/32' }, '10.0.0.2'), false);
  assert.equal(ipBlockMatches({ cidr: '128.0.0.0/1' }, '200.1.1.1'), true);
  assert.equal(ipBlockMatches({ cidr: '128.0.0.0/1' }, '127.255.255.255'), false);
});

test('an IPv6 ipBlock never matches an IPv4 address, and an IPv6 except excludes nothing', () => {
  assert.equal(ipBlockMatches({ cidr: '::/0' }, '10.0.0.1'), false);
  assert.equal(ipBlockMatches({ cidr: '10.0.0.0/8', except: ['::/0', '2001:db8::/64'] }, '10.0.0.1'), true);
  const c = base([ingressOnServer([{ _from: [{ ipBlock: { cidr: '::/0' } }] }])]);
  assert.equal(oracleAllows(c, flow(CLIENT_A, SERVER_A)), false);
});

test('a malformed ipBlock matches nothing', () => {
  assert.equal(ipBlockMatches({ cidr: '10.0.0.0' }, '10.0.0.0'), false);
  assert.equal(ipBlockMatches({ cidr: '10.0.0.0/33' }, '10.0.0.0'), false);
  assert.equal(ipBlockMatches({ cidr: '256.0.0.0/8' }, '10.0.0.0'), false);
  assert.equal(ipBlockMatches({ cidr: '10.0.0.0/8', except: ['bogus'] }, '10.0.0.1'), false);
});

test('egress to: an ipBlock admits an external destination, a selector peer does not', () => {
  const c = base([
    policy('a', 'e', {
      podSelector: { matchLabels: { app: 'client' } },
      policyTypes: ['Egress'],
      egress: [{ to: [{ ipBlock: { cidr: '203.0.113.0/24' } }] }, { to: [{ namespaceSelector: {} }] }],
    }),
  ]);
  assert.equal(oracleAllows(c, flow(CLIENT_A, EXTERNAL)), true);
  assert.equal(oracleAllows(c, flow(CLIENT_A, CLIENT_B)), true);
  assert.equal(oracleAllows(c, flow(CLIENT_A, '198.51.100.1')), false);
});

// ---- label selectors ----

const expr = (key: string, operator: string, values?: string[]): V1LabelSelectorRequirement => ({ key, operator, values });

test('matchLabels and matchExpressions are ANDed', () => {
  const sel = { matchLabels: { app: 'web' }, matchExpressions: [expr('tier', 'In', ['front'])] };
  assert.equal(selectorMatches(sel, { app: 'web', tier: 'front' }), true);
  assert.equal(selectorMatches(sel, { app: 'web', tier: 'back' }), false);
  assert.equal(selectorMatches(sel, { app: 'db', tier: 'front' }), false);
});

test('an empty selector matches everything, including a pod without labels', () => {
  assert.equal(selectorMatches({}, {}), true);
  assert.equal(selectorMatches({ matchLabels: {}, matchExpressions: [] }, { any: 'x' }), true);
});

test('In requires the key with one of the values', () => {
  assert.equal(selectorMatches({ matchExpressions: [expr('env', 'In', ['prod', 'stage'])] }, { env: 'stage' }), true);
  assert.equal(selectorMatches({ matchExpressions: [expr('env', 'In', ['prod'])] }, { env: 'dev' }), false);
  assert.equal(selectorMatches({ matchExpressions: [expr('env', 'In', ['prod'])] }, {}), false);
});

test('NotIn matches a pod without the key', () => {
  const sel = { matchExpressions: [expr('env', 'NotIn', ['prod'])] };
  assert.equal(selectorMatches(sel, {}), true);
  assert.equal(selectorMatches(sel, { env: 'dev' }), true);
  assert.equal(selectorMatches(sel, { env: 'prod' }), false);
});

test('Exists and DoesNotExist look only at the key', () => {
  assert.equal(selectorMatches({ matchExpressions: [expr('env', 'Exists')] }, { env: '' }), true);
  assert.equal(selectorMatches({ matchExpressions: [expr('env', 'Exists')] }, {}), false);
  assert.equal(selectorMatches({ matchExpressions: [expr('env', 'DoesNotExist')] }, {}), true);
  assert.equal(selectorMatches({ matchExpressions: [expr('env', 'DoesNotExist')] }, { env: 'x' }), false);
});

test('an unknown operator matches nothing', () => {
  assert.equal(selectorMatches({ matchExpressions: [expr('env', 'Gt', ['1'])] }, { env: '2' }), false);
  assert.equal(selectorMatches({ matchExpressions: [expr('env', 'in', ['a'])] }, { env: 'a' }), false);
});

test('inherited object properties are not labels', () => {
  assert.equal(selectorMatches({ matchExpressions: [expr('constructor', 'Exists')] }, {}), false);
  assert.equal(selectorMatches({ matchExpressions: [expr('toString', 'DoesNotExist')] }, {}), true);
});

test('selector operators apply to pod selection in a real policy', () => {
  const c = base([policy('a', 'p', { podSelector: { matchExpressions: [expr('app', 'NotIn', ['client'])] } })]);
  assert.equal(oracleAllows(c, flow(CLIENT_B, SERVER_A)), false);
  assert.equal(oracleAllows(c, flow(CLIENT_B, CLIENT_A)), true);
});

// ---- ports ----

test('a port without protocol means TCP', () => {
  const c = base([ingressOnServer([{ ports: [{ port: 80 }] }])]);
  assert.equal(oracleAllows(c, flow(CLIENT_A, SERVER_A, 80, 'TCP')), true);
  assert.equal(oracleAllows(c, flow(CLIENT_A, SERVER_A, 80, 'UDP')), false);
});

test('a protocol without port allows every port of that protocol only', () => {
  const c = base([ingressOnServer([{ ports: [{ protocol: 'UDP' }] }])]);
  assert.equal(oracleAllows(c, flow(CLIENT_A, SERVER_A, 1, 'UDP')), true);
  assert.equal(oracleAllows(c, flow(CLIENT_A, SERVER_A, 65535, 'UDP')), true);
  assert.equal(oracleAllows(c, flow(CLIENT_A, SERVER_A, 53, 'TCP')), false);
  assert.equal(oracleAllows(c, flow(CLIENT_A, SERVER_A, 53, 'SCTP')), false);
});

test('endPort makes an inclusive range', () => {
  const c = base([ingressOnServer([{ ports: [{ port: 8000, endPort: 8010 }] }])]);
  assert.equal(oracleAllows(c, flow(CLIENT_A, SERVER_A, 7999)), false);
  assert.equal(oracleAllows(c, flow(CLIENT_A, SERVER_A, 8000)), true);
  assert.equal(oracleAllows(c, flow(CLIENT_A, SERVER_A, 8010)), true);
  assert.equal(oracleAllows(c, flow(CLIENT_A, SERVER_A, 8011)), false);
});

test('an ingress named port resolves on the policy pod', () => {
  const c = base([ingressOnServer([{ ports: [{ port: 'http' }] }])]);
  assert.equal(oracleAllows(c, flow(CLIENT_A, SERVER_A, 8080)), true);
  assert.equal(oracleAllows(c, flow(CLIENT_A, SERVER_A, 80)), false);
});

test('a named port resolving to a UDP port does not allow TCP', () => {
  const tcpDns = base([ingressOnServer([{ ports: [{ port: 'dns' }] }])]);
  assert.equal(oracleAllows(tcpDns, flow(CLIENT_A, SERVER_A, 53, 'TCP')), false);
  assert.equal(oracleAllows(tcpDns, flow(CLIENT_A, SERVER_A, 53, 'UDP')), false);
  const udpDns = base([ingressOnServer([{ ports: [{ port: 'dns', protocol: 'UDP' }] }])]);
  assert.equal(oracleAllows(udpDns, flow(CLIENT_A, SERVER_A, 53, 'UDP')), true);
});

test('a named port the pod does not declare matches nothing', () => {
  const c = base([ingressOnServer([{ ports: [{ port: 'metrics' }] }])]);
  assert.equal(oracleAllows(c, flow(CLIENT_A, SERVER_A, 8080)), false);
});

test('an egress named port resolves on the remote pod, per destination', () => {
  const other = pod('b', 'web', '10.0.1.5', {}, [{ name: 'http', containerPort: 9090 }]);
  const c = base(
    [policy('a', 'e', { podSelector: { matchLabels: { app: 'client' } }, policyTypes: ['Egress'], egress: [{ ports: [{ port: 'http' }] }] })],
    [other],
  );
  assert.equal(oracleAllows(c, flow(CLIENT_A, SERVER_A, 8080)), true);
  assert.equal(oracleAllows(c, flow(CLIENT_A, SERVER_A, 9090)), false);
  assert.equal(oracleAllows(c, flow(CLIENT_A, '10.0.1.5', 9090)), true);
  assert.equal(oracleAllows(c, flow(CLIENT_A, '10.0.1.5', 8080)), false);
});

test('an egress named port never matches an external destination', () => {
  const c = base([
    policy('a', 'e', { podSelector: { matchLabels: { app: 'client' } }, policyTypes: ['Egress'], egress: [{ ports: [{ port: 'http' }] }] }),
  ]);
  assert.equal(oracleAllows(c, flow(CLIENT_A, EXTERNAL, 8080)), false);
});

test('a named port matches containers other than the first', () => {
  const multi = pod('a', 'multi', '10.0.0.9', { app: 'server' });
  multi.spec!.containers.push({ name: 'side', ports: [{ name: 'admin', containerPort: 9000, protocol: 'SCTP' }] });
  const c = base([ingressOnServer([{ ports: [{ port: 'admin', protocol: 'SCTP' }] }])], [multi]);
  assert.equal(oracleAllows(c, flow(CLIENT_A, '10.0.0.9', 9000, 'SCTP')), true);
  assert.equal(oracleAllows(c, flow(CLIENT_A, '10.0.0.9', 9000, 'TCP')), false);
});
