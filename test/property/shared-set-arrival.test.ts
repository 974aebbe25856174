// Whatever order a node's CompiledPolicySets and the AddressSet shards it names arrive in (over two
// watches, with duplicates, gaps and deletions), the agent only ever enforces whole specs: every set a
// rule names is there, and each shared set is exactly one whole layout of shards. Once everything has
// arrived, it enforces the latest of both.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { createHash } from 'node:crypto';
import { shardName, type AddressSet } from '../../crds/address-set.ts';
import type { CompiledPolicySet, CompiledPolicySetSpec } from '../../crds/types.ts';
import { NodeAgent } from '../../agent/node-agent.ts';
import { SharedSetCache } from '../../agent/shared-sets.ts';
import { agentMetrics } from '../../agent/metrics.ts';
import type { Dataplane, DataplaneOutcome } from '../../agent/dataplane/dataplane.ts';
import { silentLogger } from '../../runtime/log.ts';

const SETS = ['p-000000000000000a', 'p-000000000000000b', 'p-000000000000000c'];
const hex = (s: string, n: number) => createHash('sha256').update(s).digest('hex').slice(0, n);

/** Shard count of each set's epochs 0 and 1 (the operator's history: a reshard between them). */
type Layouts = number[][];

/** One member per shard version, encoding where it came from: 10.<set>.<epoch*8+shard>.<version>. */
function shard(set: number, epoch: number, index: number, shards: number, version: number, rv: number): AddressSet {
  return {
    apiVersion: 'fencer.dev/v1alpha1', kind: 'AddressSet',
    metadata: { name: shardName(SETS[set], epoch, index), uid: `${set}/${epoch}/${index}`, resourceVersion: String(rv) },
    spec: { set: SETS[set], kind: 'ip', origin: 'o', epoch, shard: index, shards, size: 1, nodes: 1, members: [`10.${set + 1}.${epoch * 8 + index}.${version + 1}`] },
  };
}

function cps(generation: number, named: number[]): CompiledPolicySet {
  const refs = named.map((i) => ({ name: SETS[i], kind: 'ip' as const, origin: 'o' }));
  const podSet = 't-0000000000000001';
  const spec: CompiledPolicySetSpec = {
    nodeName: 'node-1', contentHash: `sha256:${hex(`gen ${generation}`, 64)}`, podCIDRs: ['10.244.0.0/24'], policies: ['ns/p'],
    ipSets: [{ name: podSet, kind: 'ip', origin: 'local pods', members: ['10.244.0.5'] }], sharedSets: refs,
    targets: [{ podSet, pods: ['ns/a'], policies: ['ns/p'], ingress: { rules: [{ id: `r-${hex(`rule ${generation}`, 16)}`, policy: 'ns/p', index: 0, anyPeer: false, peers: refs.map((r) => r.name), anyPort: true, ports: [] }] } }],
    diagnostics: [], counts: { policies: 1, rules: 1, sets: 1 + refs.length, sharedSets: refs.length, entries: 1, pods: 1 },
  };
  return { apiVersion: 'fencer.dev/v1alpha1', kind: 'CompiledPolicySet', metadata: { name: 'node-1', generation, uid: 'cps', resourceVersion: String(generation) }, spec };
}

class RecordingDataplane implements Dataplane {
  applied: CompiledPolicySetSpec[] = [];
  async apply(spec: CompiledPolicySetSpec): Promise<DataplaneOutcome> {
    this.applied.push(spec);
    return { kind: 'rules', counts: { rules: 1, sets: spec.ipSets.length, entries: 0 }, ipsetMs: 0, iptablesMs: 0 };
  }
  async drift(): Promise<string[]> { return []; }
  async cleanup(): Promise<void> {}
}

type Event = { kind: 'cps'; generation: number } | { kind: 'shard'; source: 'node' | 'bucket'; type: 'upsert' | 'delete'; object: AddressSet };

/** Everything the operator ever wrote, plus deletions: the pool the arrivals are drawn from. */
function history(layouts: Layouts, versions: number, named: number[][]): { events: Event[]; final: Event[] } {
  const events: Event[] = [];
  let rv = 100;
  const final: Event[] = [];
  for (const [set, counts] of layouts.entries()) {
    for (const [epoch, shards] of counts.entries()) {
      for (let index = 0; index < shards; index++) {
        for (let v = 0; v < versions; v++) {
          const object = shard(set, epoch, index, shards, v, rv++);
          for (const source of ['node', 'bucket'] as const) events.push({ kind: 'shard', source, type: 'upsert', object });
          events.push({ kind: 'shard', source: 'bucket', type: 'delete', object });
          if (epoch === counts.length - 1 && v === versions - 1) final.push({ kind: 'shard', source: 'node', type: 'upsert', object: { ...object, metadata: { ...object.metadata, resourceVersion: String(10_000 + rv) } } });
        }
      }
    }
  }
  for (let g = 1; g <= named.length; g++) events.push({ kind: 'cps', generation: g });
  final.push({ kind: 'cps', generation: named.length });
  return { events, final };
}

/** Each shared set in an applied spec: one epoch, every shard of it exactly once. */
function wholeLayout(spec: CompiledPolicySetSpec, layouts: Layouts): string | undefined {
  for (const set of spec.ipSets.filter((s) => s.name.startsWith('p-'))) {
    const i = SETS.indexOf(set.name);
    const decoded = set.members.map((m) => m.split('.').map(Number)).map(([, s, es]) => ({ s: s - 1, epoch: es >> 3, shard: es & 7 }));
    if (decoded.some((d) => d.s !== i)) return `${set.name}: a member of another set`;
    const epochs = new Set(decoded.map((d) => d.epoch));
    if (epochs.size !== 1) return `${set.name}: shards of epochs ${[...epochs]} mixed`;
    const [epoch] = epochs;
    const shards = decoded.map((d) => d.shard).sort();
    const want = Array.from({ length: layouts[i][epoch] }, (_, k) => k);
    if (JSON.stringify(shards) !== JSON.stringify(want)) return `${set.name}: shards ${shards} of ${want.length}`;
  }
  return undefined;
}

test('any arrival order of node objects and shards leaves the agent enforcing only whole specs, and at last the newest', async () => {
  const arbitrary = fc.record({
    layouts: fc.array(fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 1, maxLength: 2 }), { minLength: 3, maxLength: 3 }),
    versions: fc.integer({ min: 1, max: 2 }),
    named: fc.array(fc.uniqueArray(fc.integer({ min: 0, max: 2 }), { minLength: 1, maxLength: 3 }), { minLength: 1, maxLength: 3 }),
  }).chain((h) => {
    const { events, final } = history(h.layouts, h.versions, h.named);
    return fc.record({ h: fc.constant(h), final: fc.constant(final), order: fc.array(fc.constantFrom(...events), { maxLength: 60 }) });
  });
  await fc.assert(fc.asyncProperty(arbitrary, async ({ h, final, order }) => {
    const dataplane = new RecordingDataplane();
    const sharedSets = new SharedSetCache();
    const agent = new NodeAgent({
      nodeName: 'node-1', agentName: 'test', dataplane, metrics: agentMetrics(), log: silentLogger(), driftIntervalMs: 0, sharedSets,
      statusWriter: { writeStatus: async () => true },
    });
    const offered = new Set<number>();
    const deliver = async (e: Event) => {
      if (e.kind === 'cps') {
        offered.add(e.generation);
        await agent.offer(cps(e.generation, h.named[e.generation - 1]));
      } else if (sharedSets.apply(e.source, e.type, e.object)) await agent.offerSets();
      const last = dataplane.applied.at(-1);
      if (!last) return;
      const problem = wholeLayout(last, h.layouts);
      assert.equal(problem, undefined, problem);
      const generation = [...offered].find((g) => cps(g, h.named[g - 1]).spec.contentHash === last.contentHash);
      assert.ok(generation !== undefined, 'the rules are those of a spec that arrived');
      const names = last.ipSets.filter((s) => s.name.startsWith('p-')).map((s) => s.name);
      assert.deepEqual(names, [...h.named[generation - 1]].sort().map((i) => SETS[i]), 'exactly the sets that spec names');
    };
    for (const e of order) await deliver(e);
    for (const e of final) await deliver(e);
    const last = dataplane.applied.at(-1)!;
    assert.equal(last.contentHash, cps(h.named.length, h.named.at(-1)!).spec.contentHash, 'the newest spec is enforced once everything is there');
    for (const set of last.ipSets.filter((s) => s.name.startsWith('p-'))) {
      const i = SETS.indexOf(set.name);
      const epoch = h.layouts[i].length - 1;
      assert.ok(set.members.every((m) => Number(m.split('.')[2]) >> 3 === epoch && m.endsWith(`.${h.versions}`)), `${set.name}: the newest layout and versions`);
    }
    await agent.stop();
  }), { numRuns: 150 });
});
