import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { planApply, renderIptablesRestore } from '../../agent/dataplane/linux/plan.ts';
import { desiredChains } from '../../agent/dataplane/linux/translate.ts';
import { parseIpsetSave, parseIptablesSave, type KernelState } from '../../agent/dataplane/linux/kernel-state.ts';
import { scenarioSpecs } from '../helpers/scenario-specs.ts';

const empty: KernelState = { sets: new Map(), chains: new Map(), forward: [] };

// UPDATE_GOLDEN=1 rewrites the files; review the diff like any other change.
function golden(name: string, actual: string): void {
  const path = `test/golden/linux/${name}`;
  if (process.env.UPDATE_GOLDEN) writeFileSync(path, actual);
  assert.equal(actual, readFileSync(path, 'utf8'), `${path} differs (UPDATE_GOLDEN=1 to accept)`);
}

for (const [file, label] of [['21-named-port-80-from-y', 'named-port'], ['25-egress-ipblock-except', 'ipblock-except'], ['27-ingress-and-egress-independent', 'both-directions'], ['18-sctp-allow-does-not-allow-tcp', 'sctp']] as const) {
  test(`the first apply of scenario ${file} renders the golden ipset and iptables payloads`, () => {
    const spec = scenarioSpecs(`test/scenarios/${file}.yaml`, 1).get('node-1')!;
    const plan = planApply(spec, empty);
    assert.equal(plan.kind, 'rules');
    golden(`${label}.ipset`, plan.ipset);
    golden(`${label}.iptables`, plan.iptables);
  });
}

test('a kernel already holding the spec plans nothing', () => {
  const spec = scenarioSpecs('test/scenarios/21-named-port-80-from-y.yaml', 1).get('node-1')!;
  const plan = planApply(spec, empty);
  const kernel: KernelState = { ...parseIptablesSave(`*filter\n${plan.iptables.split('\n').filter((l) => l.startsWith(':') || l.startsWith('-A')).join('\n')}\nCOMMIT\n`), sets: parseIpsetSave(plan.ipset) };
  kernel.forward = ['-A FORWARD -m conntrack --ctstate NEW -m comment --comment "fencer:forward-hook" -j FENCER-FORWARD'];
  assert.equal(planApply(spec, kernel).kind, 'noop');
});

test('a rule whose peers resolved to nothing renders no line but its pods stay isolated', () => {
  const spec = scenarioSpecs('test/scenarios/05-ingress-x-a-from-pod-b.yaml', 1).get('node-1')!;
  const target = spec.targets[0];
  const hollow = { ...spec, targets: [{ ...target, ingress: { rules: target.ingress!.rules.map((r) => ({ ...r, peers: [] })) } }] };
  const chain = [...desiredChains(hollow, (id) => id).entries()].find(([c]) => c.startsWith('FENCER-I-'))!;
  assert.equal(chain[1].length, 1);
  assert.match(chain[1][0], /-j DROP$/);
});

test('a stale chain is flushed before it is deleted, in the same transaction', () => {
  const text = renderIptablesRestore(new Map([['FENCER-FORWARD', []]]), ['FENCER-FORWARD', 'FENCER-I-0123456789abcdef']);
  assert.deepEqual(text.trim().split('\n'), ['*filter', ':FENCER-FORWARD - [0:0]', ':FENCER-I-0123456789abcdef - [0:0]', '-X FENCER-I-0123456789abcdef', 'COMMIT']);
});

test('planning against its own last apply diffs only changed member lists, and reordered lists are still equal sets', () => {
  const spec = scenarioSpecs('test/scenarios/05-ingress-x-a-from-pod-b.yaml', 1).get('node-1')!;
  const first = planApply(spec, empty);
  const peer = spec.ipSets.find((s) => s.name.startsWith('p-'))!;
  const grown = JSON.parse(JSON.stringify({ ...spec, ipSets: spec.ipSets.map((s) => (s === peer ? { ...s, members: [...s.members, '10.9.9.9'] } : s)) }));
  const change = planApply(grown, first.after);
  assert.equal(change.kind, 'members');
  assert.equal(change.ipset, `add FENCER-${peer.name} 10.9.9.9\n`);
  assert.equal(change.ipsetRollback, `del FENCER-${peer.name} 10.9.9.9\n`);
  // Same members in another order: the in-order shortcut misses, the set comparison finds nothing to do.
  const reordered = JSON.parse(JSON.stringify({ ...grown, ipSets: grown.ipSets.map((s: typeof peer) => ({ ...s, members: [...s.members].reverse() })) }));
  assert.equal(planApply(reordered, change.after).kind, 'noop');
  // A rule change on a fresh copy of the same targets is still seen.
  const tightened = JSON.parse(JSON.stringify(grown));
  Object.assign(tightened.targets[0].ingress.rules[0], { anyPort: false, ports: [{ protocol: 'UDP', port: 53 }] });
  assert.equal(planApply(tightened, change.after).kind, 'rules');
});
