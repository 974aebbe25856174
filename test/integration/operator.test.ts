// The operator against a real kube-apiserver: what it writes equals the compile of the cluster, it
// writes only what changed, restarts write nothing, Node deletions and stale objects are cleaned up,
// unhonourable policies get an Event, and oversized specs are compressed.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { CoordinationV1Api, PatchStrategy, setHeaderOptions, type CoreV1Event } from '@kubernetes/client-node';
import { expandSpec, specBytes } from '../../crds/codec.ts';
import { CPS_API_VERSION, CPS_KIND, type CompiledPolicySet } from '../../crds/types.ts';
import { MANAGED_BY_LABEL } from '../../operator/cps-object.ts';
import { NOT_HONOURED_REASON } from '../../operator/events.ts';
import { counterTotal } from '../../operator/metrics.ts';
import { pendingStatusPatch } from '../../operator/in-sync.ts';
import { testCluster } from './env.ts';
import {
  converged, cpsApi, deleteCps, expectedSpecs, getCps, kube, listAddressSets, listCps, withoutRevisions, scrape, setWrites, settled, waitFor, World, writes, type Kube,
} from './operator-fixture.ts';
import { cpsTestHooks } from './operator-fixture.ts';
import { freePort } from '../../netns/free-port.ts';

const jsonPatch = setHeaderOptions('Content-Type', PatchStrategy.JsonPatch);
const hooks = cpsTestHooks();


/** Three nodes, two namespaces, pods everywhere and policies of every shape the compiler handles. */
async function threeNodeWorld(w: World) {
  const [n1, n2, n3] = [await w.node('n1'), await w.node('n2'), await w.node('n3')];
  const a = await w.namespace('a', { team: 'a' });
  const b = await w.namespace('b', { team: 'b' });
  await w.pod({ namespace: a, name: 'web-1', node: n1, labels: { app: 'web' }, ports: [{ name: 'http', containerPort: 8080 }] });
  await w.pod({ namespace: a, name: 'web-2', node: n2, labels: { app: 'web' }, ports: [{ name: 'http', containerPort: 8081 }] });
  await w.pod({ namespace: a, name: 'db', node: n3, labels: { app: 'db' } });
  await w.pod({ namespace: b, name: 'client', node: n2, labels: { role: 'client' } });
  await w.pod({ namespace: b, name: 'idle', node: n3, labels: { role: 'none' } });
  await w.policy(a, { metadata: { name: 'deny-all' }, spec: { podSelector: {}, policyTypes: ['Ingress'] } });
  await w.policy(a, {
    metadata: { name: 'web-from-clients' },
    spec: {
      podSelector: { matchLabels: { app: 'web' } },
      ingress: [{ _from: [{ namespaceSelector: { matchLabels: { team: 'b' } }, podSelector: { matchLabels: { role: 'client' } } }], ports: [{ port: 'http' }] }],
    },
  });
  await w.policy(a, {
    metadata: { name: 'db-egress' },
    spec: {
      podSelector: { matchLabels: { app: 'db' } },
      policyTypes: ['Egress'],
      egress: [{ to: [{ ipBlock: { cidr: '10.0.0.0/8', except: ['10.1.0.0/16'] } }, { podSelector: { matchLabels: { app: 'web' } } }], ports: [{ protocol: 'TCP', port: 5432, endPort: 5440 }] }],
    },
  });
  return { nodes: [n1, n2, n3], a, b };
}

test('every node\'s CompiledPolicySet equals the compile of the same cluster objects', async (t) => {
  const w = new World(t, 'equal');
  const { nodes } = await threeNodeWorld(w);
  const op = await w.operator();
  const all = await converged(hooks.api, nodes);
  await settled(op);
  const node1 = await hooks.api.core.readNode({ name: nodes[0] });
  const cps = all.get(nodes[0])!;
  assert.deepEqual(cps.metadata.ownerReferences?.map((o) => ({ ...o })), [{ apiVersion: 'v1', kind: 'Node', name: nodes[0], uid: node1.metadata!.uid! }]);
  assert.equal(cps.metadata.labels?.[MANAGED_BY_LABEL], 'fencer');
  assert.ok(cps.spec.targets.length > 0, 'node 1 hosts a selected pod');
  const inSync = cps.status?.conditions?.find((c) => c.type === 'InSync');
  assert.equal(inSync?.status, 'False');
  assert.equal(inSync?.reason, 'Pending');
  assert.equal(inSync?.observedGeneration, cps.metadata.generation);

  const ready = await scrape(op, '/readyz');
  assert.equal(ready.status, 200);
  const metrics = await scrape(op, '/cluster-metrics');
  assert.match(metrics.body, /^npm_num_policies \d+$/m);
  assert.match(metrics.body, /^fencer_cps_writes_total\{result="created"\} \d+$/m);
  assert.match(metrics.body, /^npm_controller_pod_exec_time_count\{operation="create",had_error="false"\} \d+$/m);
});

test('one pod label change elsewhere writes one AddressSet shard and no node object, within the window', async (t) => {
  const w = new World(t, 'label');
  const { nodes, b } = await threeNodeWorld(w);
  const op = await w.operator();
  await converged(hooks.api, nodes);
  await settled(op);
  const before = await listCps(hooks.api.custom);
  const setsBefore = await listAddressSets(hooks.api.custom);
  const expectedBefore = await expectedSpecs(hooks.api);

  const started = Date.now();
  await hooks.api.k.labelPod(b, 'idle', { role: 'client' }); // idle (node 3) becomes a peer of the web pods (nodes 1, 2)
  const expectedAfter = await expectedSpecs(hooks.api);
  const changed = nodes.filter((n) => expectedBefore.get(n)!.contentHash !== expectedAfter.get(n)!.contentHash);
  assert.deepEqual(changed, [], 'no node spec changes: the peer set the web pods\' nodes name holds the members');
  await converged(hooks.api, nodes);
  const elapsed = Date.now() - started;
  await settled(op);
  await new Promise((r) => setTimeout(r, 300));

  const now = await listCps(hooks.api.custom);
  for (const node of nodes) assert.equal(now.get(node)!.metadata.resourceVersion, before.get(node)!.metadata.resourceVersion, `${node}: untouched`);
  const setsNow = await listAddressSets(hooks.api.custom);
  const rewritten = [...setsNow.values()].filter((o) => setsBefore.get(o.metadata.name)?.metadata.resourceVersion !== o.metadata.resourceVersion);
  assert.equal(rewritten.length, 1, `one shard rewritten: ${rewritten.map((o) => o.metadata.name).join(', ')}`);
  assert.equal(setsNow.size, setsBefore.size);
  assert.ok(elapsed < 2000, `written ${elapsed} ms after the change`);
});

test('a burst of changes costs no node-object write and at most two writes per changed shard', async (t) => {
  const w = new World(t, 'burst');
  const { nodes, a, b } = await threeNodeWorld(w);
  const op = await w.operator({ coalesceMs: 400 });
  await converged(hooks.api, nodes);
  await settled(op);
  const before = await listCps(hooks.api.custom);
  const setsBefore = await listAddressSets(hooks.api.custom);
  const writesBefore = await writes(op);
  const setWritesBefore = await setWrites(op);

  await Promise.all([
    hooks.api.k.labelPod(b, 'idle', { role: 'client' }),
    hooks.api.k.labelPod(b, 'client', { extra: 'x' }),
    hooks.api.k.labelPod(a, 'db', { tier: 'data' }),
    hooks.api.k.labelPod(b, 'idle', { another: 'y' }),
  ]);
  await converged(hooks.api, nodes);
  await settled(op);
  const now = await listCps(hooks.api.custom);
  for (const n of nodes) assert.equal(now.get(n)!.metadata.generation, before.get(n)!.metadata.generation, `${n}: no spec write`);
  assert.equal((await writes(op)) - writesBefore, 0);
  const setsNow = await listAddressSets(hooks.api.custom);
  const changedShards = [...setsNow.values()].filter((o) => setsBefore.get(o.metadata.name)?.metadata.resourceVersion !== o.metadata.resourceVersion).length;
  assert.ok(changedShards >= 1);
  const shardWrites = (await setWrites(op)) - setWritesBefore;
  assert.ok(shardWrites <= 2 * changedShards, `${shardWrites} shard writes for ${changedShards} changed shards`);
});

test('a restarted operator writes nothing when nothing changed', async (t) => {
  const w = new World(t, 'restart');
  const { nodes } = await threeNodeWorld(w);
  const first = await w.operator();
  await converged(hooks.api, nodes);
  await settled(first);
  await first.stop();
  const before = await listCps(hooks.api.custom);

  const second = await w.operator();
  await settled(second);
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(await writes(second), 0);
  assert.equal(await setWrites(second), 0, 'no AddressSet written either');
  const now = await listCps(hooks.api.custom);
  for (const [name, cps] of before) if (cps.metadata.labels?.[MANAGED_BY_LABEL] === 'fencer') assert.equal(now.get(name)?.metadata.resourceVersion, cps.metadata.resourceVersion, name);
});

test('deleting a Node deletes its CompiledPolicySet; a stale one for a missing node goes at start-up', async (t) => {
  const w = new World(t, 'gone');
  const { nodes } = await threeNodeWorld(w);
  const ghost = w.name('ghost');
  const unmanaged = w.name('unmanaged');
  t.after(() => deleteCps(hooks.api.custom, unmanaged));
  t.after(() => deleteCps(hooks.api.custom, ghost));
  const spec = { ...(await expectedSpecs(hooks.api)).get(nodes[0])!, nodeName: ghost };
  const stale = (name: string, labels: Record<string, string>): CompiledPolicySet => ({ apiVersion: CPS_API_VERSION, kind: CPS_KIND, metadata: { name, labels }, spec: { ...spec, nodeName: name } });
  await hooks.api.custom.createClusterCustomObject({ ...cpsApi, body: stale(ghost, { [MANAGED_BY_LABEL]: 'fencer' }) });
  await hooks.api.custom.createClusterCustomObject({ ...cpsApi, body: stale(unmanaged, {}) });

  const op = await w.operator();
  await converged(hooks.api, nodes);
  await waitFor('the stale CompiledPolicySet to be deleted', async () => (await getCps(hooks.api.custom, ghost)) === undefined);
  assert.ok(await getCps(hooks.api.custom, unmanaged), 'objects without the managed-by label are not the operator\'s');

  await hooks.api.k.deleteNode(nodes[2]);
  await waitFor('the deleted Node\'s CompiledPolicySet to go', async () => (await getCps(hooks.api.custom, nodes[2])) === undefined);
  await converged(hooks.api, nodes.slice(0, 2));
  await settled(op);
});

test('a policy with an IPv6 ipBlock gets one Warning Event per distinct message', async (t) => {
  const w = new World(t, 'event');
  const node = await w.node('n1');
  const ns = await w.namespace('v6');
  await w.pod({ namespace: ns, name: 'web', node, labels: { app: 'web' } });
  const policy = await w.policy(ns, {
    metadata: { name: 'v6-peer' },
    spec: { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ _from: [{ ipBlock: { cidr: 'fd00::/64' } }] }] },
  });
  const events = async () => (await hooks.api.core.listNamespacedEvent({ namespace: ns, fieldSelector: `involvedObject.name=v6-peer` })).items.filter((e: CoreV1Event) => e.reason === NOT_HONOURED_REASON);

  const op = await w.operator();
  await converged(hooks.api, [node]);
  const [event] = await waitFor('an Event on the policy', async () => ((await events()).length ? events() : undefined));
  assert.equal(event.type, 'Warning');
  assert.equal(event.involvedObject.kind, 'NetworkPolicy');
  assert.equal(event.involvedObject.uid, policy.metadata!.uid);
  assert.match(event.message ?? '', /ingress\[0\]\.from\[0\]\.ipBlock\.cidr: IPv6 CIDR "fd00::\/64"/);

  // The same diagnostics again (a relabelled policy, a pod event, a restart): no new Event.
  await hooks.api.net.patchNamespacedNetworkPolicy({ namespace: ns, name: 'v6-peer', body: [{ op: 'add', path: '/metadata/labels', value: { touched: 'yes' } }] }, jsonPatch);
  await hooks.api.k.labelPod(ns, 'web', { extra: '1' });
  await settled(op);
  await op.stop();
  const again = await w.operator();
  await settled(again);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal((await events()).length, 1);

  // A different problem is a new message: a second Event.
  await hooks.api.net.patchNamespacedNetworkPolicy({ namespace: ns, name: 'v6-peer', body: [{ op: 'replace', path: '/spec/ingress/0/from/0/ipBlock/cidr', value: '2001:db8::/32' }] }, jsonPatch);
  await waitFor('a second Event', async () => (await events()).length === 2);
  assert.ok((await events()).some((e) => e.message?.includes('2001:db8::/32')));
});

test('a node whose spec exceeds the budget gets compressed member lists that expand to the compiled spec', async (t) => {
  const w = new World(t, 'budget');
  const node = await w.node('n1');
  const other = await w.node('n2');
  const ns = await w.namespace('big');
  await w.pod({ namespace: ns, name: 'web', node, labels: { app: 'web' } });
  const cidr = (await hooks.api.core.readNode({ name: other })).spec!.podCIDR!;
  const base = cidr.split('.').slice(0, 3).join('.');
  const localBase = (await hooks.api.core.readNode({ name: node })).spec!.podCIDR!.split('.').slice(0, 3).join('.');
  await w.pod({ namespace: ns, name: 'peer', node: other, labels: { role: 'peer' }, ip: `${base}.2` });
  // The node's own pods are what its CompiledPolicySet carries in full (peers are in AddressSets).
  for (let i = 0; i < 60; i += 10) {
    await Promise.all(Array.from({ length: 10 }, (_, j) => w.pod({ namespace: ns, name: `web-${i + j}`, node, labels: { app: 'web' }, ip: `${localBase}.${i + j + 10}` })));
  }
  await w.policy(ns, { metadata: { name: 'from-peers' }, spec: { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ _from: [{ podSelector: { matchLabels: { role: 'peer' } } }] }] } });
  const expected = (await expectedSpecs(hooks.api)).get(node)!;
  const budget = specBytes(expected) - 200;
  assert.ok(budget >= 1024, `the spec is large enough to need compression (${specBytes(expected)} bytes)`);

  await w.operator({ cpsBudgetBytes: budget });
  const written = (await converged(hooks.api, [node, other])).get(node)!;
  assert.ok(written.spec.ipSets.some((s) => s.membersGzip && s.members.length === 0), 'a member list is compressed');
  assert.ok(specBytes(written.spec) <= budget, `${specBytes(written.spec)} bytes written, budget ${budget}`);
  assert.deepEqual(withoutRevisions(expandSpec(written.spec)), expected);
});


test('`fencer operator` serves /healthz, /readyz and /cluster-metrics; on SIGTERM it releases the Lease and exits 0', async (t) => {
  const w = new World(t, 'cli');
  const nodes = [await w.node('n1')];
  const port = await freePort();
  const lease = w.name('lease');
  const child = spawn(new URL('../../bin/fencer', import.meta.url).pathname, [
    'operator', '--metrics-port', String(port), '--metrics-host', '127.0.0.1', '--lease-name', lease, '--identity', 'cli-test', '--log-level', 'warn',
  ], { env: { ...process.env, KUBECONFIG: testCluster().kubeconfigPath }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  t.after(() => void child.kill('SIGKILL'));

  const get = async (path: string) => {
    const res = await fetch(`http://127.0.0.1:${port}${path}`);
    return { status: res.status, body: await res.text() };
  };
  await waitFor('/healthz', async () => (await get('/healthz')).status === 200, 20_000, 100);
  await waitFor('/readyz', async () => (await get('/readyz')).status === 200, 20_000, 100);
  await converged(hooks.api, nodes);
  const coordination = hooks.api.kc.makeApiClient(CoordinationV1Api);
  await waitFor('the command to hold the Lease', async () => (await coordination.readNamespacedLease({ namespace: 'kube-system', name: lease })).spec?.holderIdentity === 'cli-test');
  const metrics = await get('/cluster-metrics');
  assert.match(metrics.body, /^# TYPE npm_controller_pod_exec_time summary$/m);
  assert.match(metrics.body, /^fencer_operator_leader 1$/m);

  child.kill('SIGTERM');
  const code = await Promise.race([exited, new Promise((r) => setTimeout(() => r('timeout'), 10_000))]);
  assert.equal(code, 0, output);
  const released = await coordination.readNamespacedLease({ namespace: 'kube-system', name: lease });
  assert.equal(released.spec?.holderIdentity, undefined, 'the Lease is released');
  await coordination.deleteNamespacedLease({ namespace: 'kube-system', name: lease });
});

test('the InSync=Pending patch lands on the object its spec write returned, and never on a status written after it', async (t) => {
  const w = new World(t, 'insync');
  const node = await w.node('n1');
  const spec = (await expectedSpecs(hooks.api)).get(node)!;
  const written = (await hooks.api.custom.createClusterCustomObject({ ...cpsApi, body: { apiVersion: CPS_API_VERSION, kind: CPS_KIND, metadata: { name: node }, spec } })) as CompiledPolicySet;
  const statusPatch = setHeaderOptions('Content-Type', PatchStrategy.JsonPatch);

  // The agent reports after the spec write: the operator's patch, built from the older object, is refused.
  const agentStatus = { observedGeneration: 1, appliedHash: spec.contentHash, conditions: [{ type: 'InSync' as const, status: 'True' as const, reason: 'Enforced', message: 'the latest generation 1 is enforced', lastTransitionTime: '2026-01-01T00:00:00Z', observedGeneration: 1 }] };
  const reported = (await hooks.api.custom.replaceClusterCustomObjectStatus({ ...cpsApi, name: node, body: { ...written, status: agentStatus } })) as CompiledPolicySet;
  const late = await hooks.api.custom.patchClusterCustomObjectStatus({ ...cpsApi, name: node, body: pendingStatusPatch(written, '2026-01-01T00:00:01Z') }, statusPatch).then(() => 200, (e: { code: number }) => e.code);
  assert.equal(late, 422);
  assert.deepEqual((await getCps(hooks.api.custom, node))!.status, agentStatus);

  // Built from the current object, it applies: InSync goes False/Pending, the agent's report stays.
  const patched = (await hooks.api.custom.patchClusterCustomObjectStatus({ ...cpsApi, name: node, body: pendingStatusPatch(reported, '2026-01-01T00:00:02Z') }, statusPatch)) as CompiledPolicySet;
  assert.equal(patched.status?.observedGeneration, 1);
  assert.deepEqual(patched.status?.conditions?.map((c) => [c.type, c.status, c.reason]), [['InSync', 'False', 'Pending']]);
});

test('InSync=Pending goes only onto nodes whose agent has not reported within --pending-after-ms', async (t) => {
  const w = new World(t, 'pendlate');
  const [n1, n2] = [await w.node('n1'), await w.node('n2')];
  const op = await w.operator({ pendingAfterMs: 1500 });
  const written = await converged(hooks.api, [n1, n2]);
  // n1's agent reports at once; n2's never does.
  const cps = written.get(n1)!;
  const agentStatus = { observedGeneration: cps.metadata.generation, appliedHash: cps.spec.contentHash, conditions: [{ type: 'InSync' as const, status: 'True' as const, reason: 'Enforced', message: 'enforced', lastTransitionTime: '2026-01-01T00:00:00Z', observedGeneration: cps.metadata.generation }] };
  await hooks.api.custom.replaceClusterCustomObjectStatus({ ...cpsApi, name: n1, body: { ...cps, status: agentStatus } });
  assert.equal((await getCps(hooks.api.custom, n2))!.status?.conditions?.length ?? 0, 0, 'no mark before the delay');
  const marked = await waitFor('n2 marked Pending', async () => {
    const now = await getCps(hooks.api.custom, n2);
    return now?.status?.conditions?.find((c) => c.type === 'InSync' && c.reason === 'Pending') ? now : undefined;
  }, 5000);
  assert.equal(marked.status!.conditions!.find((c) => c.type === 'InSync')!.observedGeneration, marked.metadata.generation);
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual((await getCps(hooks.api.custom, n1))!.status, agentStatus, 'the agent that reported keeps its report');
  assert.equal(await counterTotal(op.metrics.cpsWrites, { name: 'result', values: ['status'] }), 1, 'one Pending mark, for n2');
});

test('a node whose spec keeps changing faster than --pending-after-ms is still marked Pending when its agent is silent', async (t) => {
  const w = new World(t, 'pendchurn');
  const { nodes, b } = await threeNodeWorld(w);
  const op = await w.operator({ pendingAfterMs: 600, coalesceMs: 20 });
  await converged(hooks.api, nodes);
  // No agent runs. The client's label flips every 150 ms for 2 s: node 1's spec (its peer set) changes each time.
  const started = performance.now();
  let sawPending = false;
  for (let i = 0; performance.now() - started < 2000; i++) {
    await hooks.api.k.labelPod(b, 'client', { role: i % 2 === 0 ? 'other' : 'client' });
    await new Promise((r) => setTimeout(r, 150));
    const cps = await getCps(hooks.api.custom, nodes[0]);
    sawPending ||= !!cps?.status?.conditions?.some((c) => c.type === 'InSync' && c.reason === 'Pending');
  }
  assert.ok(sawPending, 'the silent node was marked while its spec kept changing');
  assert.ok(await counterTotal(op.metrics.cpsWrites, { name: 'result', values: ['status'] }) >= 1);
});
