// The pure parts of fencer status and fencer verify: status rows from CompiledPolicySets, and the
// detailed comparison of a kernel state with a spec.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { CompiledPolicySet, CompiledPolicySetSpec, Condition } from '../../crds/types.ts';
import type { KernelState } from '../../agent/dataplane/linux/kernel-state.ts';
import { setNames } from '../../agent/dataplane/linux/names.ts';
import { desiredChains, desiredSets } from '../../agent/dataplane/linux/translate.ts';
import { cpsObject } from '../../operator/cps-object.ts';
import { formatStatus, statusRows } from '../../inspect/status.ts';
import { compareKernel } from '../../inspect/verify.ts';
import { formatSpec } from '../../inspect/show.ts';
import { scenarioSpecs } from '../helpers/scenario-specs.ts';

const spec = scenarioSpecs('test/scenarios/13-stacked-policies-union.yaml', 2).get('node-1')!;

function cond(type: Condition['type'], status: Condition['status'], message = '', reason = 'R', at = '2025-01-02T03:04:05Z'): Condition {
  return { type, status, reason, message, lastTransitionTime: at };
}

function cps(node: string, generation: number, status?: CompiledPolicySet['status'], s: CompiledPolicySetSpec = { ...spec, nodeName: node }): CompiledPolicySet {
  const o = cpsObject(s);
  o.metadata.generation = generation;
  if (status) o.status = status;
  return o;
}

test('status: in sync, behind, degraded, not reported, no CompiledPolicySet', () => {
  const inSync = cps('node-a', 3, { agent: 'a', observedGeneration: 3, appliedHash: spec.contentHash, conditions: [cond('InSync', 'True', 'ok', 'Enforced'), cond('Degraded', 'False')] });
  const behind = cps('node-b', 4, { agent: 'b', observedGeneration: 3, appliedHash: 'sha256:old', conditions: [cond('InSync', 'False', '', 'Pending', '2025-01-02T04:00:00Z')] });
  const degraded = cps('node-c', 2, { agent: 'c', observedGeneration: 1, appliedHash: 'sha256:old', conditions: [cond('InSync', 'False'), cond('Degraded', 'True', 'ipset restore: exit 1', 'ApplyFailed')] });
  const silent = cps('node-d', 1);
  // The operator's own "pending" patch is not a report from the agent.
  const pendingOnly = cps('node-e', 1, { conditions: [cond('InSync', 'False', 'generation 1 is not enforced yet', 'Pending')] });
  const rows = statusRows(['node-a', 'node-b', 'node-c', 'node-d', 'node-e', 'node-f'], [inSync, behind, degraded, silent, pendingOnly]);
  assert.deepEqual(rows.map((r) => [r.node, r.inSync, r.enforced, r.latest]), [
    ['node-a', true, 3, 3], ['node-b', false, 3, 4], ['node-c', false, 1, 2], ['node-d', false, undefined, 1], ['node-e', false, undefined, 1], ['node-f', false, undefined, undefined],
  ]);
  assert.equal(rows[0].since, '2025-01-02T03:04:05Z');
  assert.equal(rows[0].problem, undefined);
  assert.equal(rows[1].problem, 'agent enforces generation 3; generation 4 is pending');
  assert.equal(rows[2].problem, 'ApplyFailed: ipset restore: exit 1');
  assert.match(rows[3].problem!, /^agent has not reported/);
  assert.match(rows[4].problem!, /^agent has not reported/);
  assert.match(rows[5].problem!, /^no CompiledPolicySet: the operator has not compiled this node/);
  const text = formatStatus(rows);
  assert.match(text, /^NODE +ENFORCED +LATEST +IN SYNC +SINCE +PROBLEMS\n/);
  assert.match(text, /\nnode-a +3 +3 +yes +2025-01-02T03:04:05Z\n/);
  assert.match(text, /\nnode-d +- +1 +no +- +agent has not reported/);
  assert.match(text, /5 of 6 nodes do not enforce their latest CompiledPolicySet\n$/);
  const stale = statusRows(['node-a'], [inSync, cps('gone', 1)]);
  assert.match(stale.find((r) => r.node === 'gone')!.problem!, /the Node no longer exists/);
});

/** The kernel state an agent leaves after applying the spec (base set names, hook in place). */
function appliedKernel(s: CompiledPolicySetSpec): KernelState {
  const chains = desiredChains(s, (id) => setNames(id)[0]);
  return {
    chains: new Map([...chains].map(([k, v]) => [k, [...v]])),
    sets: new Map(desiredSets(s).map((d) => [setNames(d.id)[0], { name: setNames(d.id)[0], type: d.type, members: new Set(d.members) }])),
    forward: ['-A FORWARD -m conntrack --ctstate NEW -m comment --comment "fencer:forward-hook" -j FENCER-FORWARD'],
  };
}

test('verify: a kernel that holds exactly the spec has no differences', () => {
  assert.deepEqual(compareKernel(spec, appliedKernel(spec)), { differences: [], notes: [] });
});

test('verify names a deleted rule by policy and index, and an extra or missing set member', () => {
  const kernel = appliedKernel(spec);
  const chain = [...kernel.chains.keys()].find((c) => c.startsWith('FENCER-I-'))!;
  kernel.chains.get(chain)!.splice(1, 1); // the second rule: x/allow-81-from-y
  const peer = [...kernel.sets.values()].find((s) => s.type === 'hash:ip')!;
  peer.members.add('10.9.9.9');
  const gone = [...peer.members][0];
  peer.members.delete(gone);
  const { differences } = compareKernel(spec, kernel);
  assert.equal(differences.length, 3, differences.join('\n'));
  assert.match(differences[0], new RegExp(`^set ${peer.name} \\(pods with any labels in namespaces with ns=y\\): 1 member missing: ${gone.replace(/\./g, '\\.')}$`));
  assert.match(differences[1], new RegExp(`^set ${peer.name} .*: 1 member not in the spec: 10\\.9\\.9\\.9$`));
  assert.match(differences[2], new RegExp(`^chain ${chain}: rule missing: x/allow-81-from-y ingress rule 0: from pods with any labels in namespaces with ns=y, port 81/TCP \\(for x/a\\)\\n    expected: -A ${chain} `));
});

test('verify: missing hook, missing set, foreign rule, unknown chain, reordered rules, leftover set', () => {
  const kernel = appliedKernel(spec);
  kernel.forward = [];
  const [setName] = kernel.sets.keys();
  kernel.sets.delete(setName);
  kernel.sets.set('FENCER-p-0000000000000000', { name: 'FENCER-p-0000000000000000', type: 'hash:ip', members: new Set() });
  kernel.chains.get('FENCER-INGRESS')!.push('-A FENCER-INGRESS -s 10.1.1.1/32 -j ACCEPT');
  kernel.chains.set('FENCER-I-ffffffffffffffff', []);
  kernel.chains.get('FENCER-TOP')!.reverse();
  const { differences, notes } = compareKernel(spec, kernel);
  assert.ok(differences.some((d) => d.startsWith(`set ${setName} (`) && d.endsWith('is missing from the kernel')), differences.join('\n'));
  assert.ok(differences.includes('chain FENCER-INGRESS: rule not in the spec: -A FENCER-INGRESS -s 10.1.1.1/32 -j ACCEPT'));
  assert.ok(differences.includes('chain FENCER-I-ffffffffffffffff is in the kernel but not in the spec (0 rules)'));
  assert.ok(differences.includes('chain FENCER-TOP: the rules are all there but in a different order (or repeated)'));
  assert.ok(differences.includes("the FORWARD jump to FENCER-FORWARD is missing: no traffic reaches Fencer's rules"));
  assert.deepEqual(notes, ['set FENCER-p-0000000000000000 is left over (unused; the agent destroys it on its next change)']);
  const misplaced = appliedKernel(spec);
  misplaced.forward = ['-A FORWARD -j KUBE-FORWARD', ...misplaced.forward];
  assert.deepEqual(compareKernel(spec, misplaced, 'first').differences, ['the FORWARD jump to FENCER-FORWARD is rule 2 of FORWARD; it should be the first']);
  assert.deepEqual(compareKernel(spec, misplaced, 'after-kube-services').differences, []);
});

test("verify: the previous generation's chains, left until the agent's cleanup, are a note and not a difference", () => {
  const kernel = appliedKernel(spec);
  const previous = desiredChains(spec, (id) => setNames(id)[0], 1);
  for (const [chain, lines] of previous) if (chain !== 'FENCER-FORWARD') kernel.chains.set(chain, [...lines]);
  kernel.chains.get('FENCER-FORWARD')!.push(...previous.get('FENCER-FORWARD')!);
  const { differences, notes } = compareKernel(spec, kernel);
  assert.deepEqual(differences, []);
  assert.equal(notes.length, 1);
  assert.match(notes[0], /^chains FENCER-EGRESS-1, .*FENCER-TOP-1 are left over from the previous generation/);
  // Seen from the other side: generation 1 live, generation 0 left over.
  const flipped = appliedKernel(spec);
  flipped.chains = new Map([...previous].map(([k, v]) => [k, [...v]]));
  assert.deepEqual(compareKernel(spec, flipped).differences, []);
});

test('show: a node without isolated pods says so', () => {
  const empty = scenarioSpecs('test/scenarios/01-no-policies.yaml', 1).get('node-1')!;
  assert.match(formatSpec(empty), /No policy selects a pod on this node: nothing is isolated, everything is allowed\./);
  const text = formatSpec(spec);
  assert.match(text, /ingress: isolated; chain FENCER-I-[0-9a-f]{16} \(from FENCER-INGRESS\); rules in order, then default deny/);
  assert.match(text, /egress: not isolated \(no policy selects these pods for egress\)/);
});
