// The shared-set contract's pure parts: layout, the operator's plan, delivery labels, resolution.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AddressSet } from '../../crds/address-set.ts';
import { agentSetSelectors, BUCKETS, consumerLabels, deliveredTo, EXACT_CONSUMERS, isConsumerLabel } from '../../crds/consumers.ts';
import { membersFromShards, resolveSharedSets } from '../../crds/resolve.ts';
import { addressSetSchemaErrors } from '../../crds/schema.ts';
import type { SharedSet } from '../../operator/compile/compiler.ts';
import { chooseLayout, SHARD_MAX, SHARD_TARGET, shardOf, splitMembers } from '../../operator/set-layout.ts';
import { planSet, type ShardAction } from '../../operator/set-plan.ts';
import { SharedSetCache } from '../../agent/shared-sets.ts';

const ips = (n: number, from = 0) => Array.from({ length: n }, (_, i) => `10.${(i + from) >> 16 & 255}.${(i + from) >> 8 & 255}.${(i + from) & 255}`);
const set = (members: string[], nodes = ['n1', 'n2']): SharedSet => ({ name: 'p-0123456789abcdef', kind: 'ip', origin: 'pods with app=a', members, nodes });

/** What the apiserver would hold after the plan's writes (resourceVersions made up). */
function applied(observed: AddressSet[], plan: { writes: ShardAction[]; deletes: ShardAction[] }): AddressSet[] {
  const byName = new Map(observed.map((o) => [o.metadata.name, o]));
  let rv = 100;
  for (const a of plan.writes) if (a.kind !== 'delete') byName.set(a.object.metadata.name, { ...a.object, metadata: { ...a.object.metadata, resourceVersion: String(rv++), uid: a.object.metadata.name } });
  for (const a of plan.deletes) if (a.kind === 'delete') byName.delete(a.name);
  return [...byName.values()];
}

test('a member always lands in the same shard, and shards keep the members sorted', () => {
  const members = ips(1000);
  for (const m of members.slice(0, 50)) assert.equal(shardOf(m, 8), shardOf(m, 8));
  const parts = splitMembers(members, 8);
  assert.equal(parts.flat().length, 1000);
  for (const [i, p] of parts.entries()) for (const m of p) assert.equal(shardOf(m, 8), i);
  for (const p of parts) assert.deepEqual(p, members.filter((m) => p.includes(m)));
});

test('the layout holds while it fits, and a new count comes under the next epoch', () => {
  assert.deepEqual(chooseLayout(ips(10), undefined), { epoch: 0, shards: 1 });
  const big = chooseLayout(ips(10_000), undefined);
  assert.equal(big.shards, Math.ceil(10_000 / SHARD_TARGET));
  assert.ok(splitMembers(ips(10_000), big.shards).every((p) => p.length <= SHARD_MAX));
  // Growing by a few members around a threshold changes nothing: no resharding back and forth.
  assert.deepEqual(chooseLayout(ips(SHARD_TARGET + 5), { epoch: 3, shards: 1 }), { epoch: 3, shards: 1 });
  const grown = chooseLayout(ips(SHARD_MAX + 40), { epoch: 3, shards: 1 });
  assert.equal(grown.epoch, 4);
  assert.ok(grown.shards > 1);
  // Emptied out: fewer shards again.
  assert.deepEqual(chooseLayout(ips(3), { epoch: 4, shards: 8 }), { epoch: 5, shards: 1 });
});

test('plan: a new set is every shard at once; one member more rewrites exactly one shard', () => {
  const first = planSet('p-0123456789abcdef', set(ips(1000)), [], []);
  assert.equal(first.deletes.length, 0);
  assert.equal(first.writes.length, Math.ceil(1000 / SHARD_TARGET));
  for (const w of first.writes) {
    assert.equal(w.kind, 'create');
    if (w.kind === 'create') assert.deepEqual(addressSetSchemaErrors(w.object), []);
  }
  const onServer = applied([], first);
  assert.deepEqual(planSet('p-0123456789abcdef', set(ips(1000)), [], onServer), { writes: [], deletes: [] }, 'the same set writes nothing');
  const more = planSet('p-0123456789abcdef', set([...ips(1000), '10.9.9.9']), [], onServer);
  assert.equal(more.writes.length, 1);
  assert.equal(more.writes[0].kind, 'update');
  assert.equal(more.deletes.length, 0);
});

test('plan: a shard edited or stripped of its labels by hand is rewritten; others\' labels are kept', () => {
  const onServer = applied([], planSet('p-0123456789abcdef', set(ips(5)), [], []));
  const edited = onServer.map((o) => ({ ...o, metadata: { ...o.metadata, labels: { team: 'x' } }, spec: { ...o.spec, members: ['10.6.6.6'], size: 1 } }));
  const fix = planSet('p-0123456789abcdef', set(ips(5)), [], edited);
  assert.equal(fix.writes.length, 1);
  const w = fix.writes[0];
  assert.ok(w.kind === 'update');
  assert.deepEqual(w.object.spec.members, ips(5));
  assert.equal(w.object.metadata.labels?.team, 'x');
  assert.ok(deliveredTo(w.object.metadata.labels, 'n1') && deliveredTo(w.object.metadata.labels, 'n2'));
});

test('plan: nodes named exactly up to the limit, then by bucket; a set nobody uses is deleted', () => {
  const few = Array.from({ length: EXACT_CONSUMERS }, (_, i) => `node-${i}`);
  const many = Array.from({ length: 1000 }, (_, i) => `node-${i}`);
  assert.equal(Object.keys(consumerLabels(few)).length, EXACT_CONSUMERS);
  const wide = consumerLabels(many);
  assert.ok(Object.keys(wide).length <= BUCKETS);
  assert.ok(Object.keys(wide).every(isConsumerLabel));
  for (const n of many) assert.ok(deliveredTo(wide, n), `${n} receives a set every node uses`);
  assert.ok(!deliveredTo(consumerLabels(few), 'node-999'), 'a node outside a small set of consumers does not receive it');
  assert.equal(agentSetSelectors('node-1').length, 2);
  const onServer = applied([], planSet('p-0123456789abcdef', set(ips(5)), [], []));
  const gone = planSet('p-0123456789abcdef', undefined, [], onServer);
  assert.deepEqual(gone.deletes.map((d) => d.kind), ['delete']);
});

test('plan: a node stays labelled while its CompiledPolicySet on the apiserver still names the set', () => {
  const onServer = applied([], planSet('p-0123456789abcdef', set(ips(5), ['n1', 'n2']), [], []));
  const stillNamed = planSet('p-0123456789abcdef', set(ips(5), ['n1']), ['n2'], onServer);
  assert.deepEqual(stillNamed, { writes: [], deletes: [] });
  const released = planSet('p-0123456789abcdef', set(ips(5), ['n1']), [], onServer);
  assert.equal(released.writes.length, 1);
  assert.ok(released.writes[0].kind === 'update' && !deliveredTo(released.writes[0].object.metadata.labels, 'n2'));
  // The compile dropped the set, but n2's written object still names it: left alone until rewritten.
  assert.deepEqual(planSet('p-0123456789abcdef', undefined, ['n2'], onServer), { writes: [], deletes: [] });
});

test('plan: a reshard writes the whole new epoch first and deletes the old one after', () => {
  const small = applied([], planSet('p-0123456789abcdef', set(ips(100)), [], []));
  const plan = planSet('p-0123456789abcdef', set(ips(5000)), [], small);
  assert.ok(plan.writes.every((w) => w.kind === 'create' && w.object.spec.epoch === 1));
  assert.deepEqual(plan.deletes.map((d) => d.kind === 'delete' && d.name), small.map((o) => o.metadata.name));
  const after = applied(small, plan);
  const whole = membersFromShards({ name: 'p-0123456789abcdef', kind: 'ip', origin: '' }, after.map((o) => o.spec));
  assert.ok('members' in whole);
  assert.deepEqual([...whole.members].sort(), [...ips(5000)].sort());
});

test('resolve: the newest whole epoch wins; a missing, doubled or mistyped shard is not whole', () => {
  const ref = { name: 'p-0123456789abcdef', kind: 'ip' as const, origin: 'o' };
  const shard = (epoch: number, i: number, n: number, members: string[], kind: 'ip' | 'net' = 'ip') => ({ set: ref.name, kind, origin: 'o', epoch, shard: i, shards: n, size: members.length, nodes: 1, members });
  const old = [shard(0, 0, 1, ['10.0.0.1'])];
  assert.deepEqual(membersFromShards(ref, old), { members: ['10.0.0.1'], epoch: 0 });
  const half = [...old, shard(1, 1, 2, ['10.0.0.3'])];
  assert.deepEqual(membersFromShards(ref, half), { members: ['10.0.0.1'], epoch: 0 }, 'an incomplete new epoch leaves the old in force');
  assert.deepEqual(membersFromShards(ref, [...half, shard(1, 0, 2, ['10.0.0.2'])]), { members: ['10.0.0.2', '10.0.0.3'], epoch: 1 });
  assert.match((membersFromShards(ref, [shard(1, 1, 2, ['10.0.0.3'])]) as { missing: string }).missing, /waiting for shard 0 of 2/);
  assert.match((membersFromShards(ref, [shard(0, 0, 1, [], 'net')]) as { missing: string }).missing, /kind net/);
  assert.match((membersFromShards(ref, [shard(0, 0, 1, []), shard(0, 0, 1, [])]) as { missing: string }).missing, /twice/);
  assert.match((membersFromShards(ref, []) as { missing: string }).missing, /no shard/);
  const spec = { nodeName: 'n', contentHash: 'sha256:' + '0'.repeat(64), podCIDRs: [], policies: [], ipSets: [], sharedSets: [ref], targets: [], diagnostics: [], counts: { policies: 0, rules: 0, sets: 1, sharedSets: 1, entries: 0, pods: 0 } };
  const whole = resolveSharedSets(spec, () => ({ members: ['10.0.0.1'] }));
  assert.deepEqual(whole.spec?.ipSets, [{ name: ref.name, kind: 'ip', origin: 'o', members: ['10.0.0.1'] }]);
  assert.equal(whole.spec?.sharedSets, undefined);
  assert.equal(whole.spec?.counts.entries, 1);
  assert.deepEqual(resolveSharedSets(spec, () => ({ missing: 'not yet' })).missing, [`${ref.name}: not yet`]);
});

test('agent cache: a shard counts while any watch holds it; one that fails its checks makes its set wait', () => {
  const cache = new SharedSetCache();
  const ref = { name: 'p-0123456789abcdef', kind: 'ip' as const, origin: 'o' };
  const [object] = applied([], planSet(ref.name, set(['10.0.0.1', '10.0.0.2']), [], []));
  assert.equal(cache.apply('bucket', 'upsert', object), true);
  assert.deepEqual(cache.lookup(ref), { members: ['10.0.0.1', '10.0.0.2'], epoch: 0 });
  // Moving from the bucket watch to the node watch, seen in either order.
  assert.equal(cache.apply('node', 'upsert', object), false);
  assert.equal(cache.apply('bucket', 'delete', object), false);
  assert.ok('members' in cache.lookup(ref));
  assert.equal(cache.apply('node', 'delete', object), true);
  assert.ok('missing' in cache.lookup(ref));
  const bad = { ...object, metadata: { ...object.metadata, resourceVersion: '200' }, spec: { ...object.spec, members: ['10.0.0.1', 'x; rm -rf'], size: 2 } };
  cache.apply('node', 'upsert', bad);
  assert.match((cache.lookup(ref) as { missing: string }).missing, /rejected: "x; rm -rf" is not a valid ip member/);
  const fixed = { ...object, metadata: { ...object.metadata, resourceVersion: '201' } };
  cache.apply('node', 'upsert', fixed);
  const found = cache.lookup(ref);
  assert.ok('members' in found && cache.isChecked(found.members));
});

test('agent cache: a spec written against a newer shard version waits for it, whichever watch delivers first', () => {
  const cache = new SharedSetCache();
  const [object] = applied([], planSet('p-0123456789abcdef', set(['10.0.0.1']), [], []));
  const at = (rv: string, members: string[]) => ({ ...object, metadata: { ...object.metadata, resourceVersion: rv }, spec: { ...object.spec, members, size: members.length } });
  cache.apply('node', 'upsert', at('100', ['10.0.0.1']));
  const ref = { name: 'p-0123456789abcdef', kind: 'ip' as const, origin: 'o' };
  assert.match((cache.lookup({ ...ref, revision: '105' }) as { missing: string }).missing, /as of revision 105 \(holding 100\)/);
  assert.deepEqual(cache.lookup(ref), { members: ['10.0.0.1'], epoch: 0 }, 'a spec without a revision takes what is there');
  cache.apply('node', 'upsert', at('105', ['10.0.0.2']));
  assert.deepEqual(cache.lookup({ ...ref, revision: '105' }), { members: ['10.0.0.2'], epoch: 0 });
  assert.ok('members' in cache.lookup({ ...ref, revision: '101' }), 'newer than asked is fine');
});
