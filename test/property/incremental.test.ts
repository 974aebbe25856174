import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { PolicyCompiler, type ClusterChange } from '../../operator/compile/compiler.ts';
import { objectKey, type ClusterSnapshot } from '../../model/cluster.ts';
import { cluster } from './arbitraries.ts';

const runs = Number(process.env.FENCER_PROPERTY_RUNS ?? 2000) / 4;

function serialize(specs: Map<string, unknown>): string {
  return JSON.stringify([...specs.entries()]);
}

/** The changes that turn cluster `a` into cluster `b`: deletions of what `b` lacks, then upserts. */
function changesBetween(a: ClusterSnapshot, b: ClusterSnapshot): ClusterChange[] {
  const out: ClusterChange[] = [];
  const kinds = [['Namespace', 'namespaces'], ['Node', 'nodes'], ['Pod', 'pods'], ['NetworkPolicy', 'policies']] as const;
  for (const [kind, field] of kinds) {
    const inB = new Set(b[field].map(objectKey));
    for (const o of a[field]) if (!inB.has(objectKey(o))) out.push({ kind, type: 'delete', object: o } as ClusterChange);
    for (const o of b[field]) out.push({ kind, type: 'upsert', object: o } as ClusterChange);
  }
  return out;
}

test('recompiling only the nodes a change touches gives the same specs as a full compile, after every change', () => {
  fc.assert(
    fc.property(cluster, cluster, fc.infiniteStream(fc.nat()), (a, b, order) => {
      const compiler = new PolicyCompiler();
      compiler.load(a);
      compiler.recompile(compiler.nodeNames());
      const changes = changesBetween(a, b);
      const shuffled = changes.map((c) => ({ c, k: order.next().value })).sort((x, y) => x.k - y.k).map((x) => x.c);
      const state: ClusterSnapshot = { namespaces: [...a.namespaces], nodes: [...a.nodes], pods: [...a.pods], policies: [...a.policies] };
      for (const change of shuffled) {
        const reported = compiler.update(change);
        applyToSnapshot(state, change);
        const full = PolicyCompiler.compile(state);
        assert.equal(serialize(compiler.current()), serialize(full), `after ${change.type} ${change.kind} ${objectKey(change.object)}`);
        for (const [node, spec] of reported) assert.equal(spec?.contentHash, full.get(node)?.contentHash);
      }
    }),
    { numRuns: runs },
  );
});

test('incrementally, node specs equal a full compile\'s and every shared set whose members or nodes changed is reported', () => {
  const sets = (c: PolicyCompiler) => new Map(c.sharedSetIds().map((id) => [id, JSON.stringify(c.sharedSet(id))]));
  fc.assert(
    fc.property(cluster, cluster, fc.infiniteStream(fc.nat()), (a, b, order) => {
      const compiler = PolicyCompiler.loaded(a);
      compiler.takeSetChanges();
      const changes = changesBetween(a, b);
      const shuffled = changes.map((c) => ({ c, k: order.next().value })).sort((x, y) => x.k - y.k).map((x) => x.c);
      const state: ClusterSnapshot = { namespaces: [...a.namespaces], nodes: [...a.nodes], pods: [...a.pods], policies: [...a.policies] };
      for (const change of shuffled) {
        const before = sets(compiler);
        compiler.update(change);
        applyToSnapshot(state, change);
        const full = PolicyCompiler.loaded(state);
        const where = `after ${change.type} ${change.kind} ${objectKey(change.object)}`;
        assert.equal(serialize(compiler.nodeSpecs()), serialize(full.nodeSpecs()), where);
        const after = sets(compiler);
        assert.deepEqual(after, sets(full), where);
        const reported = new Set(compiler.takeSetChanges());
        for (const id of new Set([...before.keys(), ...after.keys()])) {
          if (before.get(id) !== after.get(id)) assert.ok(reported.has(id), `${where}: set ${id} changed unreported`);
        }
      }
    }),
    { numRuns: runs },
  );
});

test('the same cluster in any input order compiles to byte-identical specs', () => {
  fc.assert(
    fc.property(cluster, fc.infiniteStream(fc.nat()), (c, order) => {
      const shuffle = <T>(xs: T[]) => xs.map((x) => ({ x, k: order.next().value })).sort((p, q) => p.k - q.k).map((p) => p.x);
      const reordered = { namespaces: shuffle(c.namespaces), nodes: shuffle(c.nodes), pods: shuffle(c.pods), policies: shuffle(c.policies) };
      assert.equal(serialize(PolicyCompiler.compile(reordered)), serialize(PolicyCompiler.compile(c)));
    }),
    { numRuns: runs },
  );
});

function applyToSnapshot(state: ClusterSnapshot, change: ClusterChange): void {
  const field = ({ Namespace: 'namespaces', Node: 'nodes', Pod: 'pods', NetworkPolicy: 'policies' } as const)[change.kind];
  const list = state[field] as Array<{ metadata?: { namespace?: string; name?: string } }>;
  const key = objectKey(change.object);
  const i = list.findIndex((o) => objectKey(o) === key);
  if (i >= 0) list.splice(i, 1);
  if (change.type === 'upsert') list.push(change.object);
}
