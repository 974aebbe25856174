import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { CompiledPolicySetSpec } from '../../crds/types.ts';
import { planNft } from '../../agent/dataplane/nftables/plan.ts';
import { parseNftJson, type LiveState } from '../../agent/dataplane/nftables/live-state.ts';
import { renderTable } from '../../agent/dataplane/nftables/render.ts';
import { desiredState } from '../../agent/dataplane/nftables/translate.ts';
import { preferNftables } from '../../agent/dataplane/nftables/backend.ts';
import { scenarioSpecs } from '../helpers/scenario-specs.ts';

const named = scenarioSpecs('test/scenarios/21-named-port-80-from-y.yaml', 1).get('node-1')!;
const peer = named.targets[0].ingress!.rules[0].peers[0];
const ingressChain = `ingress-${named.targets[0].podSet}`;

function withMembers(spec: CompiledPolicySetSpec, set: string, members: string[]): CompiledPolicySetSpec {
  return { ...spec, ipSets: spec.ipSets.map((s) => (s.name === set ? { ...s, members } : s)) };
}

/** The table right after the first apply of `spec`, as our own plan says it is. */
function applied(spec: CompiledPolicySetSpec): LiveState {
  return planNft(desiredState(spec), undefined).after;
}

test('a missing table is written whole; the table as planned plans nothing', () => {
  const d = desiredState(named);
  const first = planNft(d, undefined);
  assert.equal(first.kind, 'rules');
  assert.ok(first.whole);
  assert.equal(first.script, renderTable(d));
  assert.deepEqual(first.differences, ['the table inet fencer is missing']);
  const again = planNft(desiredState(structuredClone(named)), first.after);
  assert.equal(again.kind, 'noop');
  assert.equal(again.script, '');
  assert.deepEqual(again.differences, []);
});

test('a member change is element statements only, deletes before adds', () => {
  const live = applied(named);
  const have = named.ipSets.find((s) => s.name === peer)!.members;
  const plan = planNft(desiredState(withMembers(named, peer, [...have.slice(1), '10.9.9.9'])), live);
  assert.equal(plan.kind, 'members');
  assert.equal(plan.script, `delete element inet fencer ${peer} {\n\t${have[0]}\n}\nadd element inet fencer ${peer} {\n\t10.9.9.9\n}\n`);
  assert.doesNotMatch(plan.script, /rule|chain|set |table/);
});

test('a local pod joining, leaving or moving between targets is a map entry change, not a rule change', () => {
  const pods = named.targets[0].podSet;
  const joined = withMembers(named, pods, ['10.244.1.10', '10.244.1.99']);
  const plan = planNft(desiredState(joined), applied(named));
  assert.equal(plan.kind, 'members');
  assert.equal(plan.script, `add element inet fencer ingress-pods {\n\t10.244.1.99 : jump ${ingressChain}\n}\n`);
  // Two targets; a pod moves from one to the other: one delete and one add of its entry, one transaction.
  const other = { ...named.targets[0], podSet: 't-00000000000000f1', ingress: { rules: [] } };
  const two = (a: string[], b: string[]): CompiledPolicySetSpec => ({
    ...named, targets: [named.targets[0], other],
    ipSets: [...named.ipSets.map((s) => (s.name === pods ? { ...s, members: a } : s)), { name: other.podSet, kind: 'ip', origin: 'other pods', members: b }],
  });
  const moved = planNft(desiredState(two(['10.244.1.10'], ['10.244.1.99'])), applied(two(['10.244.1.10', '10.244.1.99'], [])));
  assert.equal(moved.kind, 'members');
  assert.equal(moved.script, `delete element inet fencer ingress-pods {\n\t10.244.1.99\n}\nadd element inet fencer ingress-pods {\n\t10.244.1.99 : jump ingress-${other.podSet}\n}\n`);
});

test('a rule change flushes and refills only the chains that changed, in one script', () => {
  const tightened = structuredClone(named);
  Object.assign(tightened.targets[0].ingress!.rules[0], { anyPort: false, ports: [{ protocol: 'UDP', port: 53 }] });
  const plan = planNft(desiredState(tightened), applied(named));
  assert.equal(plan.kind, 'rules');
  assert.equal(plan.whole, false);
  const lines = plan.script.trim().split('\n');
  assert.equal(lines[0], `flush chain inet fencer ${ingressChain}`);
  assert.match(lines[1], new RegExp(`^add rule inet fencer ${ingressChain} ip saddr @${peer} udp dport 53 return comment "fencer:[0-9a-f]{16} r-`));
  assert.match(lines[2], /^add rule .* drop comment/);
  // The named-port set no rule uses any more goes, after the chain that used it was refilled.
  assert.equal(lines[3], `delete set inet fencer ${named.ipSets.find((s) => s.kind === 'ipPort')!.name}`);
  assert.equal(lines.length, 4);
  assert.doesNotMatch(plan.script, /forward/);
  assert.equal(planNft(desiredState(tightened), plan.after).kind, 'noop');
});

test('a target that goes: its map entries, then its chain, then its sets are removed, in that order', () => {
  const none: CompiledPolicySetSpec = { ...named, targets: [] };
  const plan = planNft(desiredState(none), applied(named));
  assert.equal(plan.kind, 'rules');
  const at = (re: RegExp) => plan.script.split('\n').findIndex((l) => re.test(l));
  assert.ok(at(/^delete element inet fencer ingress-pods/) < at(new RegExp(`^delete chain inet fencer ${ingressChain}$`)));
  assert.ok(at(new RegExp(`^flush chain inet fencer ${ingressChain}$`)) < at(new RegExp(`^delete chain inet fencer ${ingressChain}$`)));
  assert.ok(at(new RegExp(`^delete chain`)) < at(/^delete set/));
  assert.deepEqual(plan.differences.filter((d) => /left over/.test(d)).length, 3);
});

test('an interval block replaced by a wider one is deleted first in the same script (nft refuses overlaps)', () => {
  const base: CompiledPolicySetSpec = {
    ...named, ipSets: [...named.ipSets, { name: 'p-00000000000000b2', kind: 'net', origin: 'cidrs', members: ['10.0.0.0/25'] }],
    targets: [{ ...named.targets[0], ingress: { rules: [{ ...named.targets[0].ingress!.rules[0], peers: ['p-00000000000000b2'] }] } }],
  };
  const plan = planNft(desiredState(withMembers(base, 'p-00000000000000b2', ['10.0.0.0/24'])), applied(base));
  assert.equal(plan.kind, 'members');
  assert.equal(plan.script, 'delete element inet fencer p-00000000000000b2 {\n\t10.0.0.0/25\n}\nadd element inet fencer p-00000000000000b2 {\n\t10.0.0.0/24\n}\n');
});

// What nft 1.0.6 printed for the table of `named` after a member change, a set added by hand
// (p-…b2, an interval set) and a rule added by hand to `forward` (no Fencer comment).
const TAMPERED = '{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"table": {"family": "inet", "name": "fencer", "handle": 7}}, {"map": {"family": "inet", "name": "egress-pods", "table": "fencer", "type": "ipv4_addr", "handle": 5, "map": "verdict"}}, {"map": {"family": "inet", "name": "ingress-pods", "table": "fencer", "type": "ipv4_addr", "handle": 6, "map": "verdict", "elem": [["10.244.1.10", {"jump": {"target": "ingress-t-71c4264c62cf80fe"}}]]}}, {"set": {"family": "inet", "name": "n-6fc6d440dfeafd37", "table": "fencer", "type": ["ipv4_addr", "inet_proto", "inet_service"], "handle": 19, "elem": [{"concat": ["10.244.1.10", "tcp", 80]}]}}, {"set": {"family": "inet", "name": "p-2c9eb597113cf857", "table": "fencer", "type": "ipv4_addr", "handle": 20, "elem": ["10.244.2.11", "10.244.2.99"]}}, {"set": {"family": "inet", "name": "p-00000000000000b2", "table": "fencer", "type": "ipv4_addr", "handle": 24, "flags": ["interval"], "elem": [{"prefix": {"addr": "10.0.0.0", "len": 25}}, "10.1.0.7", {"prefix": {"addr": "10.2.0.0", "len": 24}}]}}, {"chain": {"family": "inet", "table": "fencer", "name": "forward", "handle": 1, "type": "filter", "hook": "forward", "prio": -5, "policy": "accept"}}, {"chain": {"family": "inet", "table": "fencer", "name": "ingress-t-71c4264c62cf80fe", "handle": 21}}, {"rule": {"family": "inet", "table": "fencer", "chain": "forward", "handle": 7, "comment": "fencer:f5e3c8adc20bbf50 only new connections", "expr": [{"match": {"op": "!=", "left": {"ct": {"key": "state"}}, "right": "new"}}, {"accept": null}]}}, {"rule": {"family": "inet", "table": "fencer", "chain": "forward", "handle": 8, "comment": "fencer:295163a086924b56 egress", "expr": [{"vmap": {"key": {"payload": {"protocol": "ip", "field": "saddr"}}, "data": "@egress-pods"}}]}}, {"rule": {"family": "inet", "table": "fencer", "chain": "forward", "handle": 9, "comment": "fencer:ca4bc681bbfe64ae ingress", "expr": [{"vmap": {"key": {"payload": {"protocol": "ip", "field": "daddr"}}, "data": "@ingress-pods"}}]}}, {"rule": {"family": "inet", "table": "fencer", "chain": "forward", "handle": 25, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 22}}, {"accept": null}]}}, {"rule": {"family": "inet", "table": "fencer", "chain": "ingress-t-71c4264c62cf80fe", "handle": 22, "comment": "fencer:fb1ffe41298e2f15 r-ea690856f78f702b", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "@p-2c9eb597113cf857"}}, {"match": {"op": "==", "left": {"concat": [{"payload": {"protocol": "ip", "field": "daddr"}}, {"meta": {"key": "l4proto"}}, {"payload": {"protocol": "tcp", "field": "dport"}}]}, "right": "@n-6fc6d440dfeafd37"}}, {"return": null}]}}, {"rule": {"family": "inet", "table": "fencer", "chain": "ingress-t-71c4264c62cf80fe", "handle": 23, "comment": "fencer:cec1223f3cfe4f12 default deny t-71c4264c62cf80fe", "expr": [{"drop": null}]}}]}';

test('read-back of real nft JSON: elements in the written form, hand-made rules and sets found and undone', () => {
  const live = parseNftJson(TAMPERED);
  assert.deepEqual([...live.sets.get('p-00000000000000b2')!.elements], ['10.0.0.0/25', '10.1.0.7', '10.2.0.0/24']);
  assert.equal(live.sets.get('p-00000000000000b2')!.decl, 'ipv4_addr interval');
  assert.deepEqual([...live.sets.get('n-6fc6d440dfeafd37')!.elements], ['10.244.1.10 . tcp . 80']);
  assert.equal(live.chains.get('forward')!.base, 'filter forward -5 accept');
  assert.equal(live.chains.get('forward')!.hashes.at(-1), '?');
  assert.deepEqual(live.foreign, []);

  const moved = withMembers(named, peer, ['10.244.2.11', '10.244.2.99']);
  assert.equal(named.targets[0].podSet, 't-71c4264c62cf80fe', 'the fixture was recorded for this spec');
  const plan = planNft(desiredState(moved), live);
  assert.equal(plan.kind, 'rules');
  assert.deepEqual(plan.differences, ['chain forward differs', 'set p-00000000000000b2 is left over']);
  const lines = plan.script.trim().split('\n');
  assert.equal(lines[0], 'flush chain inet fencer forward');
  assert.equal(lines.filter((l) => l.startsWith('add rule inet fencer forward ')).length, 3);
  assert.equal(lines.at(-1), 'delete set inet fencer p-00000000000000b2');
  // The same table without what was added by hand holds the spec exactly.
  const clean = parseNftJson(TAMPERED.replace(/, \{"set": \{[^{}]*"name": "p-00000000000000b2".*?\]\}\}/, '').replace(/, \{"rule": \{[^{}]*"handle": 25, "expr".*?\{"accept": null\}\]\}\}/, ''));
  assert.deepEqual(planNft(desiredState(moved), clean).differences, []);
});

test('what Fencer never makes, a base chain hooked otherwise or a missing map means the table is replaced whole', () => {
  const live = applied(named);
  const cases: Array<[string, LiveState]> = [
    ['flowtable', { ...live, foreign: ['flowtable f'] }],
    ['priority', { ...live, chains: new Map([...live.chains, ['forward', { ...live.chains.get('forward')!, base: 'filter forward 0 accept' }]]) }],
    ['policy', { ...live, chains: new Map([...live.chains, ['forward', { ...live.chains.get('forward')!, base: 'filter forward -5 drop' }]]) }],
    ['another base chain', { ...live, chains: new Map([...live.chains, ['input', { base: 'filter input 0 accept', hashes: [] }]]) }],
    ['map', { ...live, maps: new Map([...live.maps].filter(([m]) => m !== 'egress-pods')) }],
    ['set type', { ...live, sets: new Map([...live.sets].map(([n, s]) => [n, n === peer ? { ...s, decl: 'ipv4_addr interval' } : s])) }],
  ];
  for (const [label, state] of cases) {
    const plan = planNft(desiredState(named), state);
    assert.equal(plan.kind, 'rules', label);
    assert.ok(plan.whole, label);
    assert.ok(plan.differences.length > 0, label);
  }
  assert.equal(parseNftJson(TAMPERED.replace('"handle": 7}}', '"handle": 7, "flags": "dormant"}}')).foreign.length, 1, 'a dormant table enforces nothing');
});

test('auto prefers nftables only where nft works and kube-proxy or Fencer already use it', () => {
  assert.equal(preferNftables({ available: true, kubeProxy: true, fencerTable: false }), true);
  assert.equal(preferNftables({ available: true, kubeProxy: false, fencerTable: true }), true);
  assert.equal(preferNftables({ available: true, kubeProxy: false, fencerTable: false }), false);
  assert.equal(preferNftables({ available: false, kubeProxy: true, fencerTable: true }), false);
});

test('a session line is the plan\'s element changes as one transaction, deletes first, or nothing when it exceeds one atomic pipe write', async () => {
  const { sessionLine } = await import('../../agent/dataplane/nftables/session.ts');
  assert.equal(sessionLine([{ verb: 'delete', set: 'p-1', elements: ['10.0.0.1'] }, { verb: 'add', set: 'p-1', elements: ['10.0.0.2', '10.0.0.3'] }, { verb: 'add', set: 'p-2', elements: [] }]),
    'delete element inet fencer p-1 { 10.0.0.1 }; add element inet fencer p-1 { 10.0.0.2, 10.0.0.3 }');
  assert.equal(sessionLine([]), undefined);
  const many = Array.from({ length: 400 }, (_, i) => `10.1.${Math.floor(i / 250)}.${i % 250}`);
  assert.equal(sessionLine([{ verb: 'add', set: 'p-1', elements: many }]), undefined, 'over 4096 bytes');
  assert.ok(sessionLine([{ verb: 'add', set: 'p-1', elements: many.slice(0, 100) }]));
});
