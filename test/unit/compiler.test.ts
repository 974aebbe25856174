import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { V1NetworkPolicy } from '@kubernetes/client-node';
import { PolicyCompiler } from '../../operator/compile/compiler.ts';
import type { ClusterSnapshot, V1Pod } from '../../model/cluster.ts';
import { intervalToCidrs, parseCidr, subtract } from '../../runtime/ipv4.ts';

function pod(ns: string, name: string, node: string, ip: string, labels: Record<string, string> = {}, extra: Partial<V1Pod['spec']> = {}): V1Pod {
  return {
    metadata: { namespace: ns, name, labels },
    spec: { nodeName: node, containers: [{ name: 'c', image: 'i', ports: [{ name: 'web', containerPort: ip.endsWith('.10') ? 80 : 8080 }] }], ...extra },
    status: { phase: 'Running', podIP: ip },
  };
}

function policy(ns: string, name: string, spec: V1NetworkPolicy['spec']): V1NetworkPolicy {
  return { metadata: { namespace: ns, name }, spec };
}

function cluster(pods: V1Pod[], policies: V1NetworkPolicy[], nodes = ['n1', 'n2', 'n3']): ClusterSnapshot {
  return {
    namespaces: ['x', 'y'].map((n) => ({ metadata: { name: n, labels: { ns: n } } })),
    nodes: nodes.map((n, i) => ({ metadata: { name: n }, spec: { podCIDR: `10.244.${i + 1}.0/24` } })),
    pods,
    policies,
  };
}

const basePods = [pod('x', 'a', 'n1', '10.244.1.10', { app: 'a' }), pod('y', 'b', 'n2', '10.244.2.10', { app: 'b' }), pod('y', 'c', 'n3', '10.244.3.10', { app: 'c' })];

test('a pod selected only for egress still accepts all ingress', () => {
  const specs = PolicyCompiler.compile(cluster(basePods, [policy('x', 'e', { podSelector: {}, policyTypes: ['Egress'] })]));
  const [target] = specs.get('n1')!.targets;
  assert.deepEqual(target.egress, { rules: [] });
  assert.equal(target.ingress, undefined);
});

test('nodes without selected pods get an empty spec, and only referenced sets are shipped', () => {
  const specs = PolicyCompiler.compile(cluster(basePods, [policy('x', 'p', { podSelector: {}, ingress: [{ _from: [{ podSelector: { matchLabels: { app: 'a' } } }] }] })]));
  assert.equal(specs.get('n2')!.targets.length, 0);
  assert.equal(specs.get('n2')!.ipSets.length, 0);
  assert.deepEqual(specs.get('n1')!.ipSets.map((s) => s.kind).sort(), ['ip', 'ip']);
});

test('ipBlock except is subtracted into plain CIDRs, and 0.0.0.0/0 becomes two /1s', () => {
  const base = parseCidr('10.0.0.0/8');
  const hole = parseCidr('10.1.0.0/16');
  assert.ok(base.ok && hole.ok);
  assert.deepEqual(subtract(base.interval, [hole.interval]).flatMap(intervalToCidrs), [
    '10.0.0.0/16', '10.2.0.0/15', '10.4.0.0/14', '10.8.0.0/13', '10.16.0.0/12', '10.32.0.0/11', '10.64.0.0/10', '10.128.0.0/9',
  ]);
  const all = parseCidr('0.0.0.0/0');
  assert.ok(all.ok);
  assert.deepEqual(intervalToCidrs(all.interval), ['0.0.0.0/1', '128.0.0.0/1']);
});

test('an IPv6 ipBlock is reported and matches nothing, while its policy still isolates', () => {
  const specs = PolicyCompiler.compile(cluster(basePods, [policy('x', 'v6', { podSelector: {}, ingress: [{ _from: [{ ipBlock: { cidr: 'fd00::/8' } }] }] })]));
  const spec = specs.get('n1')!;
  assert.match(spec.diagnostics[0].message, /IPv6 CIDR "fd00::\/8" is not supported/);
  assert.deepEqual(spec.targets[0].ingress!.rules[0].peers, []);
  assert.equal(spec.targets[0].ingress!.rules[0].anyPeer, false);
});

test('a policy with a malformed podSelector isolates its whole namespace and allows nothing', () => {
  const bad = policy('y', 'bad', { podSelector: { matchExpressions: [{ key: 'app', operator: 'Near' }] }, ingress: [{}] });
  const specs = PolicyCompiler.compile(cluster(basePods, [bad]));
  for (const node of ['n2', 'n3']) {
    assert.deepEqual(specs.get(node)!.targets[0].ingress, { rules: [] });
    assert.match(specs.get(node)!.diagnostics[0].message, /unknown selector operator "Near"/);
  }
});

test('ingress named ports resolve per local pod, so one name can mean different numbers', () => {
  const pods = [pod('x', 'a', 'n1', '10.244.1.10'), pod('x', 'b', 'n1', '10.244.1.11')];
  const specs = PolicyCompiler.compile(cluster(pods, [policy('x', 'web', { podSelector: {}, ingress: [{ ports: [{ port: 'web' }] }] })]));
  const spec = specs.get('n1')!;
  const setName = spec.targets[0].ingress!.rules[0].ports[0].namedPortSet!;
  assert.deepEqual(spec.ipSets.find((s) => s.name === setName)!.members, ['10.244.1.10,tcp:80', '10.244.1.11,tcp:8080']);
});

test('hostNetwork pods are not enforced: they share the node address', () => {
  const pods = [pod('x', 'h', 'n1', '10.244.1.10', {}, { hostNetwork: true })];
  const specs = PolicyCompiler.compile(cluster(pods, [policy('x', 'deny', { podSelector: {} })]));
  assert.equal(specs.get('n1')!.targets.length, 0);
});

test('a deleted and recreated pod leaves its old address in no set', () => {
  const compiler = new PolicyCompiler();
  compiler.load(cluster(basePods, [policy('x', 'p', { podSelector: {}, ingress: [{ _from: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }] }] })]));
  compiler.recompile(compiler.nodeNames());
  compiler.update({ kind: 'Pod', type: 'delete', object: basePods[1] });
  compiler.update({ kind: 'Pod', type: 'upsert', object: pod('y', 'b', 'n3', '10.244.3.99', { app: 'b' }) });
  const members = compiler.spec('n1')!.ipSets.flatMap((s) => s.members);
  assert.ok(!members.includes('10.244.2.10'));
  assert.ok(members.includes('10.244.3.99'));
});

test('a pod status heartbeat that changes nothing the compiler reads dirties no node', () => {
  const compiler = new PolicyCompiler();
  compiler.load(cluster(basePods, []));
  compiler.recompile(compiler.nodeNames());
  const heartbeat = { ...basePods[0], status: { ...basePods[0].status, conditions: [{ type: 'Ready', status: 'True' }] } };
  assert.equal(compiler.applyChange({ kind: 'Pod', type: 'upsert', object: heartbeat }).size, 0);
});

test('a pod change dirties its own node and reports the shared sets it enters; no other node spec changes', () => {
  const compiler = new PolicyCompiler();
  compiler.load(cluster(basePods, [policy('x', 'p', { podSelector: {}, ingress: [{ _from: [{ namespaceSelector: {}, podSelector: { matchLabels: { app: 'c' } } }] }] })]));
  compiler.recompile(compiler.nodeNames());
  const [setId] = compiler.sharedSetIds();
  assert.deepEqual(compiler.takeSetChanges(), [setId]); // the first compile brings the set into use
  const membersBefore = compiler.sharedSet(setId)!.members;
  const n1Before = compiler.nodeSpec('n1');
  const relabelled = { ...basePods[1], metadata: { ...basePods[1].metadata, labels: { app: 'c' } } };
  assert.deepEqual([...compiler.applyChange({ kind: 'Pod', type: 'upsert', object: relabelled })].sort(), ['n2']);
  assert.deepEqual(compiler.takeSetChanges(), [setId]);
  const changed = compiler.recompile(['n2']);
  assert.deepEqual([...changed.keys()], []); // n2 hosts no selected pod; n1 names the set, whose members live elsewhere
  assert.equal(compiler.nodeSpec('n1'), n1Before);
  assert.notDeepEqual(compiler.sharedSet(setId)!.members, membersBefore);
  assert.deepEqual(compiler.sharedSet(setId)!.nodes, ['n1']);
  // The full view (what the agent enforces) does see the new member.
  assert.ok(compiler.spec('n1')!.ipSets.find((s) => s.name === setId)!.members.length > membersBefore.length);
});

test('the content hash changes exactly when the content does', () => {
  const c = cluster(basePods, [policy('x', 'p', { podSelector: {} })]);
  const a = PolicyCompiler.compile(c).get('n1')!.contentHash;
  assert.equal(PolicyCompiler.compile(c).get('n1')!.contentHash, a);
  const c2 = cluster(basePods, [policy('x', 'p', { podSelector: {}, ingress: [{}] })]);
  assert.notEqual(PolicyCompiler.compile(c2).get('n1')!.contentHash, a);
});

test('a deleted node loses its spec', () => {
  const compiler = new PolicyCompiler();
  compiler.load(cluster(basePods, []));
  compiler.recompile(compiler.nodeNames());
  const changed = compiler.update({ kind: 'Node', type: 'delete', object: { metadata: { name: 'n2' } } });
  assert.deepEqual([...changed.entries()], [['n2', undefined]]);
  assert.equal(compiler.spec('n2'), undefined);
});
