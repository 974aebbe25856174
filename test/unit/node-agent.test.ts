import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { CompiledPolicySet, CompiledPolicySetSpec, CompiledPolicySetStatus } from '../../crds/types.ts';
import { NodeAgent } from '../../agent/node-agent.ts';
import { SharedSetCache } from '../../agent/shared-sets.ts';
import { agentMetrics } from '../../agent/metrics.ts';
import type { Dataplane, DataplaneOutcome } from '../../agent/dataplane/dataplane.ts';
import { cpsObject } from '../../operator/cps-object.ts';
import { silentLogger } from '../../runtime/log.ts';
import { scenarioSpecs } from '../helpers/scenario-specs.ts';

class FakeDataplane implements Dataplane {
  applied: CompiledPolicySetSpec[] = [];
  failNext = 0;
  async apply(spec: CompiledPolicySetSpec): Promise<DataplaneOutcome> {
    if (this.failNext > 0) {
      this.failNext--;
      throw new Error('iptables-restore: injected failure');
    }
    this.applied.push(spec);
    return { kind: 'rules', counts: { rules: 3, sets: 1, entries: spec.ipSets.reduce((n, s) => n + s.members.length, 0) }, ipsetMs: 1, iptablesMs: 1 };
  }
  async drift(): Promise<string[]> { return []; }
  async cleanup(): Promise<void> {}
}

function setup() {
  const dataplane = new FakeDataplane();
  const statuses: CompiledPolicySetStatus[] = [];
  const agent = new NodeAgent({
    nodeName: 'node-1', agentName: 'test', dataplane, metrics: agentMetrics(), log: silentLogger(), driftIntervalMs: 0,
    statusWriter: { writeStatus: async (_c, s) => { statuses.push(s); return true; } },
  });
  return { agent, dataplane, statuses };
}

const spec = scenarioSpecs('test/scenarios/05-ingress-x-a-from-pod-b.yaml', 1).get('node-1')!;
const cps = (s: CompiledPolicySetSpec, generation: number): CompiledPolicySet => ({ ...cpsObject(s), metadata: { ...cpsObject(s).metadata, generation } });
const condition = (s: CompiledPolicySetStatus, type: string) => s.conditions!.find((c) => c.type === type)!;

test('a valid CompiledPolicySet is applied and reported in sync', async () => {
  const { agent, dataplane, statuses } = setup();
  await agent.offer(cps(spec, 1));
  assert.equal(dataplane.applied.length, 1);
  const status = statuses.at(-1)!;
  assert.equal(status.observedGeneration, 1);
  assert.equal(status.appliedHash, spec.contentHash);
  assert.equal(condition(status, 'InSync').status, 'True');
  assert.equal(condition(status, 'Degraded').status, 'False');
});

test('a spec referring to a set it does not define is rejected whole and the last good state stays', async () => {
  const { agent, dataplane, statuses } = setup();
  await agent.offer(cps(spec, 1));
  const bogus = { ...spec, targets: [{ ...spec.targets[0], ingress: { rules: [{ ...spec.targets[0].ingress!.rules[0], peers: ['p-ffffffffffffffff'] }] } }] };
  await agent.offer(cps(bogus, 2));
  assert.ok(dataplane.applied.every((s) => s.contentHash === spec.contentHash), 'only the good spec was ever applied');
  const status = statuses.at(-1)!;
  assert.equal(status.observedGeneration, 1);
  assert.equal(condition(status, 'Degraded').reason, 'Invalid');
  assert.match(condition(status, 'Degraded').message, /peer set "p-ffffffffffffffff" is missing/);
  assert.equal(condition(status, 'InSync').status, 'False');
});

test('a pod outside the node\'s pod CIDRs and a spec for another node are rejected', async () => {
  const { agent, statuses } = setup();
  const podSet = spec.targets[0].podSet;
  const foreign = { ...spec, ipSets: spec.ipSets.map((s) => (s.name === podSet ? { ...s, members: ['192.0.2.7'] } : s)) };
  await agent.offer(cps(foreign, 1));
  assert.match(condition(statuses.at(-1)!, 'Degraded').message, /192\.0\.2\.7 is not in this node's pod CIDRs/);
  await agent.offer(cps({ ...spec, nodeName: 'node-2' }, 2));
  assert.match(condition(statuses.at(-1)!, 'Degraded').message, /this agent enforces node "node-1"/);
});

test('a failed apply reports Degraded, keeps the previous generation and succeeds on retry', async () => {
  const { agent, dataplane, statuses } = setup();
  await agent.offer(cps(spec, 1));
  dataplane.failNext = 1;
  const next = { ...spec, contentHash: `sha256:${'2'.repeat(64)}` };
  await agent.offer(cps(next, 2));
  let status = statuses.at(-1)!;
  assert.equal(condition(status, 'Degraded').reason, 'ApplyFailed');
  assert.equal(status.observedGeneration, 1);
  await agent.kick();
  status = statuses.at(-1)!;
  assert.equal(status.observedGeneration, 2);
  assert.equal(condition(status, 'Degraded').status, 'False');
  await agent.stop();
});

test('a deleted CompiledPolicySet leaves the enforced state alone', async () => {
  const { agent, dataplane } = setup();
  await agent.offer(cps(spec, 1));
  await agent.offer(undefined);
  assert.equal(dataplane.applied.length, 1);
  assert.equal(agent.enforcedGeneration(), 1);
});

test('a member list accepted before does not shield a changed one: a bad new member is still rejected', async () => {
  const { agent, dataplane, statuses } = setup();
  await agent.offer(cps(spec, 1));
  const peer = spec.ipSets.find((s) => s.name.startsWith('p-'))!;
  const withMember = (m: string) => ({ ...spec, ipSets: spec.ipSets.map((s) => (s === peer ? { ...s, members: [...s.members, m] } : s)) });
  await agent.offer(cps(withMember('10.1.2.3'), 2));
  const applied = (m: string) => dataplane.applied.some((a) => a.ipSets.some((set) => set.members.includes(m)));
  assert.ok(applied('10.1.2.3'));
  await agent.offer(cps(withMember('10.1.2.300'), 3));
  assert.ok(!applied('10.1.2.300'), 'the bad list was not applied');
  assert.match(condition(statuses.at(-1)!, 'Degraded').message, /"10\.1\.2\.300" is not a valid ip member/);
  await agent.offer(cps(withMember(`10.1.2.3${'0'.repeat(70)}`), 4));
  assert.match(condition(statuses.at(-1)!, 'Degraded').message, /schema: .*must NOT have more than 64 characters/);
  assert.ok(!applied(`10.1.2.3${'0'.repeat(70)}`));
});

test('the status goes onto the newest version of the applied spec, once (the operator\'s InSync=Pending mark arrives while it applies)', async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const dataplane = new FakeDataplane();
  const apply = dataplane.apply.bind(dataplane);
  dataplane.apply = async (s) => { await gate; return apply(s); };
  const writes: string[] = [];
  const agent = new NodeAgent({
    nodeName: 'node-1', agentName: 'test', dataplane, metrics: agentMetrics(), log: silentLogger(), driftIntervalMs: 0,
    statusWriter: { writeStatus: async (c) => { writes.push(c.metadata.resourceVersion!); return true; } },
  });
  const written = { ...cps(spec, 1), metadata: { ...cps(spec, 1).metadata, uid: 'u', resourceVersion: '10' } };
  const syncing = agent.offer(written);
  const pending = agent.offer({ ...written, metadata: { ...written.metadata, resourceVersion: '11' }, status: { conditions: [{ type: 'InSync', status: 'False', reason: 'Pending', message: 'generation 1 is not enforced yet', lastTransitionTime: '2026-01-01T00:00:00Z', observedGeneration: 1 }] } });
  release();
  await Promise.all([syncing, pending]);
  assert.deepEqual(writes, ['11'], 'one write, onto the version carrying the Pending mark');
  await agent.stop();
});

test('sets that are not sets (past a bypassed schema) are rejected as invalid, and the agent keeps syncing', async () => {
  const { agent, dataplane, statuses } = setup();
  await agent.offer(cps(spec, 1));
  const peer = spec.ipSets.find((s) => s.name.startsWith('p-'))!;
  for (const [generation, bad] of [[2, null], [3, 'p-0000000000000000'], [4, { name: peer.name, kind: peer.kind, origin: 'x' }]] as const) {
    await agent.offer(cps({ ...spec, ipSets: [...spec.ipSets.filter((s) => s !== peer), bad as never] }, generation));
    assert.equal(condition(statuses.at(-1)!, 'Degraded').reason, 'Invalid', `generation ${generation}`);
  }
  await agent.offer(cps({ ...spec, contentHash: `sha256:${'3'.repeat(64)}` }, 5));
  assert.equal(dataplane.applied.at(-1)!.contentHash, `sha256:${'3'.repeat(64)}`, 'a good spec after them is applied');
});

test('a spec naming a shared set not received yet waits (not degraded); member changes of the enforced spec keep flowing meanwhile', async () => {
  const sharedSets = new SharedSetCache();
  const dataplane = new FakeDataplane();
  const statuses: CompiledPolicySetStatus[] = [];
  const agent = new NodeAgent({
    nodeName: 'node-1', agentName: 'test', dataplane, metrics: agentMetrics(), log: silentLogger(), driftIntervalMs: 0, sharedSets,
    statusWriter: { writeStatus: async (_c, s) => { statuses.push(s); return true; } },
  });
  const peer = spec.ipSets.find((s) => s.name.startsWith('p-'))!;
  const ref = { name: peer.name, kind: peer.kind, origin: peer.origin };
  const shard = (members: string[], rv: string, set = peer.name) => ({
    apiVersion: 'fencer.dev/v1alpha1' as const, kind: 'AddressSet' as const,
    metadata: { name: `${set}-0-0`, uid: set, resourceVersion: rv },
    spec: { set, kind: peer.kind, origin: 'o', epoch: 0, shard: 0, shards: 1, size: members.length, nodes: 1, members },
  });
  const split = { ...spec, ipSets: spec.ipSets.filter((s) => s.name !== peer.name), sharedSets: [ref] };
  sharedSets.apply('node', 'upsert', shard(['10.1.0.1'], '1'));
  await agent.offer(cps(split, 1));
  assert.deepEqual(dataplane.applied.at(-1)!.ipSets.find((s) => s.name === peer.name)!.members, ['10.1.0.1']);
  // Generation 2 names a set whose shards have not arrived.
  const other = 'p-00000000000000ee';
  const rule = { ...split.targets[0].ingress!.rules[0], peers: [other] };
  const waiting = { ...split, sharedSets: [ref, { ...ref, name: other }], targets: [{ ...split.targets[0], ingress: { rules: [rule] } }], contentHash: `sha256:${'e'.repeat(64)}` };
  const versioned = (o: CompiledPolicySet): CompiledPolicySet => ({ ...o, metadata: { ...o.metadata, resourceVersion: `rv-${o.metadata.generation}` } });
  await agent.offer(versioned(cps(waiting, 2)));
  let status = statuses.at(-1)!;
  assert.equal(status.observedGeneration, 1);
  assert.equal(condition(status, 'Degraded').status, 'False');
  assert.equal(condition(status, 'InSync').reason, 'WaitingForSets');
  assert.match(condition(status, 'InSync').message, /p-00000000000000ee: no shard received yet/);
  assert.equal(agent.healthy(), true);
  // A member change of the enforced generation's set is applied while generation 2 waits, and writes no status.
  const written = statuses.length;
  if (sharedSets.apply('node', 'upsert', shard(['10.1.0.1', '10.1.0.2'], '2'))) await agent.offerSets();
  assert.equal(statuses.length, written, 'a member change is no status write');
  assert.deepEqual(dataplane.applied.at(-1)!.ipSets.find((s) => s.name === peer.name)!.members, ['10.1.0.1', '10.1.0.2']);
  assert.equal(dataplane.applied.at(-1)!.contentHash, split.contentHash, 'still generation 1\'s rules');
  // The missing set arrives: generation 2 is enforced.
  if (sharedSets.apply('node', 'upsert', shard(['10.1.0.9'], '3', other))) await agent.offerSets();
  assert.equal(dataplane.applied.at(-1)!.contentHash, waiting.contentHash);
  status = statuses.at(-1)!;
  assert.equal(status.observedGeneration, 2);
  assert.equal(condition(status, 'InSync').status, 'True');
  // Once enforced, member churn of its sets is applied and still writes no status (counts stay those of the generation's apply).
  const settled = statuses.length;
  if (sharedSets.apply('node', 'upsert', shard(['10.1.0.9', '10.1.0.10'], '4', other))) await agent.offerSets();
  assert.ok(dataplane.applied.at(-1)!.ipSets.find((s) => s.name === other)!.members.includes('10.1.0.10'));
  assert.equal(statuses.length, settled, 'a member change is no status write');
});
