// The product fixes the fault and hostile-input tests led to, each pinned by a fast test:
//  - compressed member lists that would expand beyond a bound (a zip bomb) are refused, not inflated;
//  - the operator rewrites a CompiledPolicySet whose content was edited while its contentHash was not;
//  - an agent waiting out a failed apply's back-off is not re-triggered by status-only events;
//  - a watch whose list keeps failing backs off (it used to retry every half second);
//  - the compiler reports an endPort without a port, and selectors with labels the API would refuse,
//    and lets them match nothing (fail closed).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { KubeConfig, type CustomObjectsApi } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import type { Dataplane, DataplaneOutcome } from '../../agent/dataplane/dataplane.ts';
import { agentMetrics } from '../../agent/metrics.ts';
import { NodeAgent } from '../../agent/node-agent.ts';
import { encodeForBudget, expandSpec } from '../../crds/codec.ts';
import type { CompiledPolicySet, CompiledPolicySetSpec } from '../../crds/types.ts';
import type { ClusterSnapshot } from '../../model/cluster.ts';
import { PolicyCompiler } from '../../operator/compile/compiler.ts';
import { normalizePolicy } from '../../operator/compile/policy.ts';
import { cpsObject } from '../../operator/cps-object.ts';
import { sameContent } from '../../operator/cps-plan.ts';
import { operatorMetrics } from '../../operator/metrics.ts';
import { CpsWriter } from '../../operator/writer.ts';
import { Backoff } from '../../runtime/backoff.ts';
import { ResilientInformer } from '../../runtime/informer.ts';
import { silentLogger } from '../../runtime/log.ts';
import { scenarioSpecs } from '../helpers/scenario-specs.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const spec = scenarioSpecs('test/scenarios/05-ingress-x-a-from-pod-b.yaml', 1).get('node-1')!;

test('a zip bomb in membersGzip is refused before it is inflated', () => {
  const bomb = gzipSync(Buffer.alloc(100 * 1024 * 1024, '10.0.0.1\n'), { level: 9 }).toString('base64');
  const hostile: CompiledPolicySetSpec = { ...spec, ipSets: [...spec.ipSets, { name: 'p-00000000000000b0', kind: 'ip', origin: 'x', members: [], membersGzip: bomb }] };
  const rss = process.memoryUsage().rss;
  assert.throws(() => expandSpec(hostile, 8 * 1024 * 1024), /expand beyond 8388608 bytes/);
  assert.ok(process.memoryUsage().rss - rss < 64 * 2 ** 20, 'not inflated');
  // What the operator compresses still expands.
  const big: CompiledPolicySetSpec = { ...spec, ipSets: spec.ipSets.map((s) => ({ ...s, members: Array.from({ length: 5000 }, (_, i) => `10.1.${i >> 8}.${i & 255}`) })) };
  const encoded = encodeForBudget(big, 40_000);
  assert.ok(encoded.ipSets.some((x) => x.membersGzip));
  assert.deepEqual(expandSpec(encoded), big);
});

test('sameContent: key order and compression do not matter, a member does', () => {
  const reordered = JSON.parse(JSON.stringify(spec, (_k, v) => (v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).reverse()) : v))) as CompiledPolicySetSpec;
  assert.ok(sameContent(reordered, spec));
  assert.ok(sameContent(encodeForBudget(spec, 1024), spec));
  const edited = structuredClone(spec);
  edited.ipSets[0].members.push('10.9.9.9');
  assert.ok(!sameContent(edited, spec));
});

test('the writer rewrites a CompiledPolicySet edited by hand without touching its contentHash, and only that', async () => {
  const node = { name: 'node-1', uid: 'uid-1' };
  const writes: CompiledPolicySet[] = [];
  let generation = 1;
  const api = {
    replaceClusterCustomObject: async ({ body }: { body: CompiledPolicySet }) => {
      writes.push(body);
      return { ...body, metadata: { ...body.metadata, generation: ++generation, uid: 'cps-uid' } };
    },
    patchClusterCustomObjectStatus: async () => { throw Object.assign(new Error('conflict'), { code: 422 }); },
  } as unknown as CustomObjectsApi;
  const writer = new CpsWriter({ custom: api, desired: () => spec, setsReady: async () => true, setRevision: () => undefined, nodeRef: () => node, nodeNames: () => ['node-1'], budgetBytes: 1 << 20, concurrency: 1, pendingAfterMs: 0, metrics: operatorMetrics(new Registry()), log: silentLogger() });
  const object = (s: CompiledPolicySetSpec, g: number): CompiledPolicySet => {
    const o = cpsObject(s);
    o.metadata = { ...o.metadata, generation: g, uid: 'cps-uid', ownerReferences: [{ apiVersion: 'v1', kind: 'Node', name: 'node-1', uid: 'uid-1' }] };
    return o;
  };
  writer.observe('upsert', object(spec, 1));
  writer.lead();
  await sleep(30);
  assert.equal(writes.length, 0, 'the content matches: nothing to write');
  const edited = structuredClone(spec);
  edited.ipSets[0].members.push('10.9.9.9');
  writer.observe('upsert', object(edited, 2));
  await sleep(30);
  assert.equal(writes.length, 1, 'the edit is rewritten');
  assert.deepEqual(writes[0].spec, spec);
  // The echo of our own write, and a status-only event, cost nothing more.
  writer.observe('upsert', object(spec, 3));
  writer.observe('upsert', { ...object(spec, 3), status: { agent: 'x' } });
  await sleep(30);
  assert.equal(writes.length, 1);
  await writer.standBy();
});

test('status-only events do not cut short the back-off of a failed apply', async () => {
  let applies = 0;
  const dataplane: Dataplane = {
    async apply(): Promise<DataplaneOutcome> { applies++; throw new Error('iptables-restore: injected'); },
    async drift() { return []; },
    async cleanup() {},
  };
  const agent = new NodeAgent({ nodeName: 'node-1', agentName: 't', dataplane, metrics: agentMetrics(), log: silentLogger(), driftIntervalMs: 0, statusWriter: { writeStatus: async () => true } });
  const base = { ...cpsObject(spec), metadata: { ...cpsObject(spec).metadata, generation: 1, resourceVersion: '1' } };
  await agent.offer(base);
  assert.equal(applies, 1);
  // The agent's own Degraded status coming back through the watch, and other status writes.
  for (let rv = 2; rv < 6; rv++) await agent.offer({ ...base, metadata: { ...base.metadata, resourceVersion: String(rv) }, status: { agent: String(rv) } });
  assert.equal(applies, 1, 'no apply before the back-off expires');
  // A new generation is not held back.
  await agent.offer({ ...base, metadata: { ...base.metadata, generation: 2, resourceVersion: '7' } });
  assert.equal(applies, 2);
  await agent.stop();
});

test('a watch whose list keeps failing backs off instead of retrying every half second', async () => {
  const kc = new KubeConfig();
  kc.loadFromOptions({ clusters: [{ name: 'c', server: 'https://127.0.0.1:9', skipTLSVerify: true }], users: [{ name: 'u' }], contexts: [{ name: 'x', cluster: 'c', user: 'u' }], currentContext: 'x' });
  let lists = 0;
  const informer = new ResilientInformer({ name: 'down', kc, path: '/api/v1/pods', log: silentLogger(), list: async () => { lists++; throw new Error('connection refused'); } });
  const started = informer.start();
  await sleep(3000);
  const seen = lists;
  await informer.stop();
  await started;
  // Back-off 1 s doubling, jittered down to half: calls at 0, 0.5–1, 1.5–3 s; without it, every 0.5–1 s (4 to 7).
  assert.ok(seen >= 2 && seen <= 3, `${seen} list attempts in 3 s`);
});

test('an endPort without a port and selectors with labels the API refuses are reported and match nothing', () => {
  const p = normalizePolicy({ metadata: { namespace: 'x', name: 'p' }, spec: { podSelector: {}, ingress: [{ ports: [{ endPort: 80 }] }] } });
  assert.deepEqual(p.ingress![0].ports, []);
  assert.equal(p.ingress![0].anyPort, false);
  assert.match(p.diagnostics.join(), /ports\[0\]\.endPort: 80 without a port/);
  const c: ClusterSnapshot = {
    namespaces: [{ metadata: { name: 'x', labels: {} } }],
    nodes: [{ metadata: { name: 'node-1' }, spec: { podCIDR: '10.244.1.0/24' } }],
    pods: [
      { metadata: { namespace: 'x', name: 'web', labels: { app: 'web' } }, spec: { nodeName: 'node-1', containers: [] }, status: { phase: 'Running', podIP: '10.244.1.10' } },
      { metadata: { namespace: 'x', name: 'odd', labels: { a: 'b, c=d' } }, spec: { nodeName: 'node-1', containers: [] }, status: { phase: 'Running', podIP: '10.244.1.11' } },
    ],
    // "a=b, c=d" is also the canonical text of {a: b, c: d}: such a selector must not share its set.
    policies: [
      { metadata: { namespace: 'x', name: 'one' }, spec: { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ from: [{ podSelector: { matchLabels: { a: 'b, c=d' } } }] } as never] } },
      { metadata: { namespace: 'x', name: 'two' }, spec: { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ from: [{ podSelector: { matchLabels: { a: 'b', c: 'd' } } }] } as never] } },
    ],
  };
  const compiled = PolicyCompiler.compile(c).get('node-1')!;
  assert.ok(compiled.diagnostics.some((d) => d.policy === 'x/one' && /label value "b, c=d"/.test(d.message)));
  const peers = compiled.targets[0].ingress!.rules.map((r) => r.peers);
  assert.deepEqual(peers[0], [], 'the malformed peer matches nothing');
  assert.equal(peers[1].length, 1);
});

test('after thousands of failures the back-off is still finite and capped (no overflow, no tight loop)', () => {
  for (const [base, max] of [[500, 30_000], [1000, 30_000], [50, 1000]]) {
    const b = new Backoff(base, max);
    for (let i = 0; i < 5000; i++) {
      const d = b.next();
      assert.ok(Number.isFinite(d) && d >= Math.min(base, max) / 2 && d <= max, `attempt ${i}: ${d}`);
    }
    assert.ok(b.next() >= max / 2, 'still at the cap');
  }
});
