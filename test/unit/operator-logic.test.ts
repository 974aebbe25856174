// The operator's pure parts and its seams, without a cluster: what to write, the guarded InSync
// patch, the store's ordering rule, the lease decision, the work queue, coalescing, and a writer
// that meets nothing but conflicts (bounded, no storm).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApiException, type CustomObjectsApi } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import { expandSpec } from '../../crds/codec.ts';
import { CPS_API_VERSION, CPS_KIND, type CompiledPolicySet, type CompiledPolicySetSpec } from '../../crds/types.ts';
import { PolicyCompiler } from '../../operator/compile/compiler.ts';
import { planCpsWrite } from '../../operator/cps-plan.ts';
import { CpsStore } from '../../operator/cps-store.ts';
import { diagnosticsMessage, eventName, type PolicyEventReporter } from '../../operator/events.ts';
import { pendingStatus, pendingStatusPatch } from '../../operator/in-sync.ts';
import { leaseStep, sight } from '../../operator/lease-step.ts';
import { clusterTotals, counterTotal, operatorMetrics, syncCounts } from '../../operator/metrics.ts';
import { OptionsError, resolveOptions } from '../../operator/options.ts';
import { Reconciler } from '../../operator/reconciler.ts';
import { KeyedWorkQueue } from '../../operator/work-queue.ts';
import { CpsWriter } from '../../operator/writer.ts';
import { silentLogger } from '../../runtime/log.ts';

const node = { name: 'node-a', uid: 'uid-a' };

function spec(hash = 'a', members: string[] = ['10.0.0.1']): CompiledPolicySetSpec {
  return {
    nodeName: 'node-a',
    contentHash: `sha256:${hash.repeat(64).slice(0, 64)}`,
    podCIDRs: ['10.0.0.0/24'],
    policies: [],
    ipSets: [{ name: 'p-0123456789abcdef', kind: 'ip', origin: 'test', members }],
    targets: [],
    diagnostics: [],
    counts: { policies: 0, rules: 0, sets: 1, entries: members.length, pods: 0 },
  };
}

function cps(s: CompiledPolicySetSpec, meta: Partial<CompiledPolicySet['metadata']> = {}): CompiledPolicySet {
  return {
    apiVersion: CPS_API_VERSION,
    kind: CPS_KIND,
    metadata: {
      name: s.nodeName, uid: 'cps-1', generation: 1, resourceVersion: '10',
      labels: { 'app.kubernetes.io/managed-by': 'fencer' },
      ownerReferences: [{ apiVersion: 'v1', kind: 'Node', name: 'node-a', uid: 'uid-a' }],
      ...meta,
    },
    spec: s,
  };
}

test('plan: create when missing, nothing when hash, owner and label match, update otherwise', () => {
  const created = planCpsWrite(spec(), node, undefined, 1 << 20);
  assert.equal(created.kind, 'create');
  assert.deepEqual(created.kind === 'create' && created.object.metadata.ownerReferences, [{ apiVersion: 'v1', kind: 'Node', name: 'node-a', uid: 'uid-a' }]);
  assert.equal(planCpsWrite(spec(), node, cps(spec()), 1 << 20).kind, 'noop');
  assert.equal(planCpsWrite(spec('b'), node, cps(spec()), 1 << 20).kind, 'update');
  assert.equal(planCpsWrite(spec(), { ...node, uid: 'uid-new' }, cps(spec()), 1 << 20).kind, 'update', 'a recreated Node needs a new owner');
  assert.equal(planCpsWrite(spec(), node, cps(spec(), { labels: {} }), 1 << 20).kind, 'update', 'an unlabelled object is adopted');
});

test('plan: an update keeps the observed metadata (resourceVersion, others\' labels) and drops managedFields', () => {
  const observed = cps(spec(), { labels: { team: 'x' }, annotations: { note: 'keep' }, managedFields: [{}] });
  const action = planCpsWrite(spec('b'), node, observed, 1 << 20);
  assert.equal(action.kind, 'update');
  if (action.kind !== 'update') return;
  assert.equal(action.object.metadata.resourceVersion, '10');
  assert.deepEqual(action.object.metadata.labels, { team: 'x', 'app.kubernetes.io/managed-by': 'fencer' });
  assert.deepEqual(action.object.metadata.annotations, { note: 'keep' });
  assert.equal(action.object.metadata.managedFields, undefined);
  assert.equal(action.object.spec.contentHash, spec('b').contentHash);
});

test('plan: delete only when the Node is gone; a known but uncompiled node waits', () => {
  assert.deepEqual(planCpsWrite(undefined, undefined, cps(spec()), 1 << 20), { kind: 'delete', name: 'node-a', uid: 'cps-1' });
  assert.equal(planCpsWrite(undefined, undefined, undefined, 1 << 20).kind, 'noop');
  assert.equal(planCpsWrite(undefined, node, cps(spec()), 1 << 20).kind, 'noop');
});

test('plan: a spec over the budget is written compressed and expands back', () => {
  const members = Array.from({ length: 200 }, (_, i) => `10.1.${i >> 8}.${i & 255}`);
  const big = spec('c', members);
  const action = planCpsWrite(big, node, undefined, 1500);
  assert.equal(action.kind, 'create');
  if (action.kind !== 'create') return;
  assert.ok(action.object.spec.ipSets[0].membersGzip);
  assert.deepEqual(expandSpec(action.object.spec), big);
});

test('InSync=Pending: set for the new generation, other conditions kept, guarded by the written resourceVersion', () => {
  const applied = { type: 'Applied' as const, status: 'True' as const, reason: 'Applied', message: 'x', lastTransitionTime: 't0', observedGeneration: 1 };
  const inSync = { type: 'InSync' as const, status: 'True' as const, reason: 'Enforced', message: 'y', lastTransitionTime: 't0', observedGeneration: 1 };
  const written = cps(spec(), { generation: 2, resourceVersion: '42' });
  written.status = { observedGeneration: 1, appliedHash: 'h', conditions: [applied, inSync] };
  const ops = pendingStatusPatch(written, 't1')!;
  assert.deepEqual(ops[0], { op: 'test', path: '/metadata/resourceVersion', value: '42' });
  assert.equal(ops[1].op, 'add');
  const status = ops[1].value as CompiledPolicySet['status'];
  assert.equal(status!.observedGeneration, 1, 'what the agent reported stays');
  assert.deepEqual(status!.conditions, [applied, { type: 'InSync', status: 'False', reason: 'Pending', message: 'generation 2 is not enforced yet', lastTransitionTime: 't1', observedGeneration: 2 }]);

  const pending = cps(spec(), { generation: 3, resourceVersion: '43' });
  pending.status = status;
  assert.equal(pendingStatus(pending, 't2')!.conditions!.find((c) => c.type === 'InSync')!.lastTransitionTime, 't1', 'already False: the transition time stays');
  pending.metadata.generation = 2;
  assert.equal(pendingStatusPatch(pending, 't2'), undefined, 'already pending for this generation: no write');
});

test('store: a watch event older than a write response is ignored; status-only events and new incarnations are not', () => {
  const store = new CpsStore();
  assert.ok(store.upsert(cps(spec('b'), { generation: 2, resourceVersion: '20' })));
  assert.equal(store.upsert(cps(spec('a'), { generation: 1, resourceVersion: '10' })), false);
  assert.equal(store.get('node-a')!.spec.contentHash, spec('b').contentHash);
  assert.ok(store.upsert(cps(spec('b'), { generation: 2, resourceVersion: '21' })));
  assert.equal(store.get('node-a')!.metadata.resourceVersion, '21');
  assert.equal(store.delete({ metadata: { name: 'node-a', uid: 'older-incarnation' } }), false);
  assert.ok(store.upsert(cps(spec('a'), { uid: 'cps-2', generation: 1 })), 'a recreated object starts again at generation 1');
  assert.ok(store.delete({ metadata: { name: 'node-a', uid: 'cps-2' } }));
  assert.equal(store.get('node-a'), undefined);
});

test('lease: create, renew our own, take a released one at once, another\'s only after it stood still for its duration', () => {
  const seen = sight({ holder: 'b', resourceVersion: '1', durationSeconds: 10 }, undefined, 1000);
  assert.equal(leaseStep(undefined, 'a', seen, 1000, 10_000), 'create');
  assert.equal(leaseStep({ holder: 'a', resourceVersion: '1' }, 'a', seen, 1000, 10_000), 'renew');
  assert.equal(leaseStep({ resourceVersion: '1' }, 'a', seen, 1000, 10_000), 'acquire');
  assert.equal(leaseStep({ holder: 'b', resourceVersion: '1', durationSeconds: 10 }, 'a', seen, 10_999, 10_000), 'wait');
  assert.equal(leaseStep({ holder: 'b', resourceVersion: '1', durationSeconds: 10 }, 'a', seen, 11_000, 10_000), 'acquire');
  const renewed = sight({ holder: 'b', resourceVersion: '2' }, seen, 9000);
  assert.equal(renewed.at, 9000, 'a renewal restarts the clock');
  assert.equal(sight({ holder: 'b', resourceVersion: '2' }, renewed, 9500), renewed);
  assert.equal(leaseStep({ holder: 'b', resourceVersion: '2', durationSeconds: 10 }, 'a', renewed, 11_000, 10_000), 'wait');
});

test('work queue: one worker per key, a key added while running runs once more, concurrency bounded, earliest time kept', async () => {
  const log: string[] = [];
  let active = 0;
  let peak = 0;
  const sinces: number[] = [];
  const queue = new KeyedWorkQueue(async (key, since) => {
    active++;
    peak = Math.max(peak, active);
    log.push(`start ${key}`);
    sinces.push(since);
    await sleep(10);
    log.push(`end ${key}`);
    active--;
  }, 2);
  queue.add('a', 5);
  queue.add('a', 3);
  assert.equal(log.length, 0, 'paused until resumed');
  queue.resume();
  queue.add('a', 7); // while a runs
  queue.add('a', 8);
  queue.add('b');
  queue.add('c');
  await sleep(5);
  await queue.drain();
  while (!queue.idle()) await sleep(5);
  await queue.drain();
  assert.equal(sinces[0], 3);
  assert.equal(log.filter((l) => l === 'start a').length, 2, 'a ran again once for both re-adds');
  assert.ok(log.indexOf('end a') < log.lastIndexOf('start a'), 'never concurrently');
  assert.equal(peak, 2);
});

test('work queue: retryLater keeps one timer per key; clear cancels it', async () => {
  let runs = 0;
  const queue = new KeyedWorkQueue(async () => void runs++, 1);
  queue.resume();
  queue.retryLater('a', 0, 20);
  queue.retryLater('a', 0, 20);
  await sleep(40);
  assert.equal(runs, 1);
  queue.retryLater('a', 0, 20);
  queue.clear();
  await sleep(40);
  assert.equal(runs, 1);
});

test('events: one name per policy incarnation and message; long diagnostics are cut', () => {
  const p = { namespace: 'ns', name: 'web', uid: 'u1' };
  assert.equal(eventName(p, 'm'), eventName(p, 'm'));
  assert.notEqual(eventName(p, 'm'), eventName(p, 'other'));
  assert.notEqual(eventName(p, 'm'), eventName({ ...p, uid: 'u2' }, 'm'));
  assert.match(eventName(p, 'm'), /^web\.fencer-[0-9a-f]{16}$/);
  assert.equal(diagnosticsMessage(['a', 'b']), 'a; b');
  assert.equal(diagnosticsMessage(['x'.repeat(5000)]).length, 1024);
});

test('cluster totals sum what the agents report; a node is in sync only at the latest generation and hash', () => {
  const withCounts = (n: number) => ({ ...cps(spec()), status: { counts: { iptablesRules: n, ipsets: 2 * n, ipsetEntries: 3 * n } } });
  assert.deepEqual(clusterTotals([withCounts(1), withCounts(2), cps(spec())]), { iptablesRules: 3, ipsets: 6, ipsetEntries: 9 });
  const applied = { ...cps(spec()), status: { observedGeneration: 1, appliedHash: spec().contentHash } };
  const old = { ...cps(spec(), { generation: 2 }), status: { observedGeneration: 1, appliedHash: spec().contentHash } };
  assert.deepEqual(syncCounts([applied, old, cps(spec())]), { inSync: 1, behind: 2 });
});

test('options: defaults, and settings that would misbehave are refused', () => {
  const o = resolveOptions({ identity: 'me', coalesceMs: undefined });
  assert.equal(o.coalesceMs, 50);
  assert.equal(o.metricsPort, 10091);
  assert.equal(o.namespace, 'kube-system');
  assert.deepEqual(o.lease, { durationMs: 10_000, renewMs: 2_000, retryMs: 2_000, renewDeadlineMs: 7_000 });
  assert.throws(() => resolveOptions({ lease: { renewDeadlineMs: 10_000 } }), OptionsError);
  assert.throws(() => resolveOptions({ cpsBudgetBytes: 10 }), OptionsError);
  assert.throws(() => resolveOptions({ lease: { durationMs: 1500 } }), OptionsError);
});

function podOn(nodeName: string, name: string, app: string, ip: string) {
  return { metadata: { namespace: 'ns', name, labels: { app } }, spec: { nodeName, containers: [] }, status: { phase: 'Running', podIP: ip } };
}

test('reconciler: nothing compiles before start; a burst inside the window is one recompile of the nodes it touched', async () => {
  const compiler = new PolicyCompiler();
  const batches: Array<Map<string, number>> = [];
  const setBatches: string[][] = [];
  const events = { note() {}, forget() {} } as unknown as PolicyEventReporter;
  const reconciler = new Reconciler({ compiler, coalesceMs: 30, metrics: operatorMetrics(new Registry()), events, log: silentLogger(), onCompiled: (c, sets) => { batches.push(c); setBatches.push(sets); } });
  reconciler.handle({ kind: 'Namespace', type: 'upsert', object: { metadata: { name: 'ns' } } });
  for (const n of ['n1', 'n2']) reconciler.handle({ kind: 'Node', type: 'upsert', object: { metadata: { name: n, uid: `uid-${n}` }, spec: { podCIDR: '10.0.0.0/24' } } });
  reconciler.handle({ kind: 'Pod', type: 'upsert', object: podOn('n1', 'web', 'web', '10.0.0.2') });
  reconciler.handle({ kind: 'NetworkPolicy', type: 'upsert', object: { metadata: { namespace: 'ns', name: 'p' }, spec: { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ from: [{ podSelector: { matchLabels: { app: 'client' } } }] }] } } as never });
  await sleep(50);
  assert.equal(batches.length, 0, 'no compile before start');
  assert.equal(reconciler.start().size, 2);
  assert.deepEqual(reconciler.nodeRef('n1'), { name: 'n1', uid: 'uid-n1' });

  reconciler.handle({ kind: 'Pod', type: 'upsert', object: podOn('n2', 'c1', 'client', '10.0.0.3') });
  reconciler.handle({ kind: 'Pod', type: 'upsert', object: podOn('n2', 'c2', 'client', '10.0.0.4') });
  assert.equal(reconciler.depth, 1, 'only the pods\' own node is dirty');
  assert.equal(reconciler.idle(), false, 'a shared set waits for the compile too');
  await sleep(60);
  assert.equal(batches.length, 1, 'one recompile for the burst');
  assert.deepEqual([...batches[0].keys()], [], 'no node spec changes: node 1 names the peer set, whose members live in AddressSets');
  assert.deepEqual(setBatches[0], compiler.sharedSetIds(), 'the peer set is reported changed, once');
  assert.equal(reconciler.idle(), true);

  // A window after the last compile: the next change goes at once; one right behind it waits for the window.
  await sleep(40);
  reconciler.handle({ kind: 'Pod', type: 'upsert', object: podOn('n2', 'c3', 'client', '10.0.0.5') });
  await sleep(5);
  assert.equal(batches.length, 2, 'a change after a quiet window is compiled at once');
  reconciler.handle({ kind: 'Pod', type: 'upsert', object: podOn('n2', 'c4', 'client', '10.0.0.6') });
  await sleep(5);
  assert.equal(batches.length, 2, 'a change right after a compile waits for the window');
  await sleep(40);
  assert.equal(batches.length, 3);
  reconciler.stop();
});

/** A CustomObjectsApi whose every replace conflicts: counts calls. */
function conflictingApi(current: CompiledPolicySet) {
  const calls = { replace: 0, get: 0, create: 0 };
  const conflict = () => new ApiException(409, 'Conflict', '{"message":"the object has been modified"}', {});
  const api = {
    replaceClusterCustomObject: async () => { calls.replace++; throw conflict(); },
    getClusterCustomObject: async () => { calls.get++; return current; },
    createClusterCustomObject: async () => { calls.create++; throw conflict(); },
  } as unknown as CustomObjectsApi;
  return { api, calls };
}

test('writer: nothing is written when the hash matches; endless 409s cost a bounded number of requests', async () => {
  const observed = cps(spec('a'));
  const { api, calls } = conflictingApi(observed);
  const metrics = operatorMetrics(new Registry());
  let desired = spec('a');
  const writer = new CpsWriter({
    custom: api, desired: () => desired, setsReady: async () => true, setRevision: () => undefined, nodeRef: () => node, nodeNames: () => ['node-a'],
    budgetBytes: 1 << 20, concurrency: 4, pendingAfterMs: 0, metrics, log: silentLogger(),
  });
  writer.observe('upsert', observed);
  writer.lead();
  await sleep(20);
  assert.deepEqual(calls, { replace: 0, get: 0, create: 0 }, 'same hash: no request at all');

  desired = spec('b');
  writer.enqueue('node-a');
  while (calls.replace < 5) await sleep(5);
  await sleep(200);
  assert.equal(calls.replace, 5, 'five attempts in a round');
  assert.equal(calls.get, 5, 'each conflict re-reads');
  assert.equal(await counterTotal(metrics.cpsWrites, { name: 'result', values: ['conflict'] }), 5);
  await sleep(1000);
  assert.ok(calls.replace > 5 && calls.replace <= 10, `a second round after the per-node back-off (0.5-1 s, growing to 30 s): ${calls.replace}`);
  await writer.standBy();
  const after = calls.replace;
  await sleep(1200);
  assert.equal(calls.replace, after, 'a standby retries nothing');
});
