import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { liveGeneration, planApply, renderChainRemoval } from '../../agent/dataplane/linux/plan.ts';
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

test('a removed chain is flushed before it is deleted, in the same transaction', () => {
  const text = renderChainRemoval(['FENCER-I-0123456789abcdef', 'FENCER-FORWARD']);
  assert.deepEqual(text.trim().split('\n'), ['*filter', ':FENCER-FORWARD - [0:0]', ':FENCER-I-0123456789abcdef - [0:0]', '-X FENCER-FORWARD', '-X FENCER-I-0123456789abcdef', 'COMMIT']);
});

/** The kernel as it is right after a plan's main transaction commits (before its cleanup). */
function committed(before: KernelState, plan: ReturnType<typeof planApply>): KernelState {
  const chains = new Map(before.chains);
  let chain = '';
  for (const line of plan.iptables.split('\n')) {
    const decl = /^:(\S+) /.exec(line);
    if (decl) chains.set(decl[1], []);
    const add = /^-A (\S+) /.exec(line);
    if (add) chains.get(add[1])!.push(line);
    const insert = /^-I (\S+) 1 (.*)$/.exec(line);
    if (insert) chains.get(insert[1])!.unshift(`-A ${insert[1]} ${insert[2]}`);
    const del = /^-X (\S+)$/.exec(line);
    if (del) chains.delete(del[1]);
    chain = line;
  }
  assert.equal(chain, '');
  return { ...before, chains, sets: plan.after.sets };
}

test('a rule change writes the other generation and only adds; the old one is removed afterwards', () => {
  const spec = scenarioSpecs('test/scenarios/05-ingress-x-a-from-pod-b.yaml', 1).get('node-1')!;
  const first = planApply(spec, empty);
  assert.equal(liveGeneration(first.after.chains), 0);
  assert.equal(first.cleanup, '');
  assert.ok(first.iptables.includes(':FENCER-FORWARD - [0:0]'));

  const tightened = JSON.parse(JSON.stringify(spec));
  Object.assign(tightened.targets[0].ingress.rules[0], { anyPort: false, ports: [{ protocol: 'UDP', port: 53 }] });
  const kernel = { ...first.after, forward: ['-A FORWARD -m conntrack --ctstate NEW -m comment --comment "fencer:forward-hook" -j FENCER-FORWARD'] };
  const second = planApply(tightened, kernel);
  assert.equal(second.kind, 'rules');
  // Nothing in the switch deletes or flushes a chain the live tree uses.
  const declared = second.iptables.split('\n').filter((l) => l.startsWith(':')).map((l) => l.slice(1).split(' ')[0]);
  assert.ok(declared.length > 3 && declared.every((c) => c.endsWith('-1')), declared.join());
  assert.doesNotMatch(second.iptables, /^-X |^-D |^-R /m);
  assert.match(second.iptables, /^-I FENCER-FORWARD 1 .* -g FENCER-TOP-1$/m);
  assert.equal(liveGeneration(second.after.chains), 1);
  assert.ok([...second.after.chains.keys()].every((c) => c === 'FENCER-FORWARD' || c.endsWith('-1')));
  // The cleanup leaves FENCER-FORWARD with the new goto alone and deletes every generation-0 chain.
  const removed = second.cleanup.split('\n').filter((l) => l.startsWith('-X ')).map((l) => l.slice(3)).sort();
  assert.deepEqual(removed, [...first.after.chains.keys()].filter((c) => c !== 'FENCER-FORWARD').sort());
  assert.match(second.cleanup, /^:FENCER-FORWARD - \[0:0\]\n-A FENCER-FORWARD .* -g FENCER-TOP-1$/m);

  // A crash between the switch and its cleanup: the next plan removes the leftovers first, then finds nothing else to do.
  const crashed = committed(kernel, second);
  assert.equal(liveGeneration(crashed.chains), 1);
  const resumed = planApply(tightened, crashed);
  assert.equal(resumed.iptables, '');
  assert.ok(resumed.tidy.includes('-X FENCER-TOP\n'));
  assert.notEqual(resumed.kind, 'rules');

  // And the next rule change goes back to generation 0.
  const third = planApply(spec, second.after);
  assert.equal(liveGeneration(third.after.chains), 0);
  assert.match(third.iptables, /^-I FENCER-FORWARD 1 .* -g FENCER-TOP$/m);
  assert.doesNotMatch(third.iptables, /^-X /m);
});

test('with legacy iptables a rule change rewrites the live generation in place, in one transaction', () => {
  const spec = scenarioSpecs('test/scenarios/05-ingress-x-a-from-pod-b.yaml', 1).get('node-1')!;
  const first = planApply(spec, empty, { inPlace: true });
  const tightened = JSON.parse(JSON.stringify(spec));
  Object.assign(tightened.targets[0].ingress.rules[0], { anyPort: false, ports: [{ protocol: 'UDP', port: 53 }] });
  const second = planApply(tightened, first.after, { inPlace: true });
  assert.equal(second.kind, 'rules');
  assert.equal(second.cleanup, '');
  assert.doesNotMatch(second.iptables, /^-I /m);
  const declared = second.iptables.split('\n').filter((l) => l.startsWith(':')).map((l) => l.slice(1).split(' ')[0]).sort();
  assert.deepEqual(declared, [...first.after.chains.keys()].sort());
  assert.equal(liveGeneration(second.after.chains), 0);
});

test('a tree without the goto (written before generations) is replaced in one transaction', () => {
  const spec = scenarioSpecs('test/scenarios/05-ingress-x-a-from-pod-b.yaml', 1).get('node-1')!;
  const kernel: KernelState = {
    sets: new Map(),
    chains: new Map([
      ['FENCER-FORWARD', ['-A FENCER-FORWARD -m comment --comment "fencer:0000000000000000 ingress" -j FENCER-INGRESS']],
      ['FENCER-INGRESS', ['-A FENCER-INGRESS -d 10.9.9.9/32 -m comment --comment "fencer:0000000000000001 t-x" -j FENCER-I-00000000000000aa']],
      ['FENCER-I-00000000000000aa', ['-A FENCER-I-00000000000000aa -m comment --comment "fencer:0000000000000002 x" -j DROP']],
    ]),
    forward: [],
  };
  const plan = planApply(spec, kernel);
  assert.equal(plan.kind, 'rules');
  assert.equal(plan.tidy, '');
  assert.match(plan.iptables, /^:FENCER-FORWARD - \[0:0\]$/m);
  assert.match(plan.iptables, /^-X FENCER-I-00000000000000aa$/m);
  assert.equal(plan.cleanup, '');
  assert.equal(liveGeneration(plan.after.chains), 0);
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
