// CompiledPolicySets edited by hand (as cluster-admin) into something schema-valid but bogus or
// harmful: the agent rejects the object whole, keeps the last good state in the kernel and says why in
// the status; the operator, started afterwards, writes the right content back. The operator is
// stopped while the edit lands, or it would repair it before the agent's verdict could be seen.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { CustomObjectsApi, type V1NetworkPolicy } from '@kubernetes/client-node';
import type { CompiledPolicySet } from '../../crds/types.ts';
import { startOperator, type OperatorHandle } from '../../operator/operator.ts';
import { silentLogger } from '../../runtime/log.ts';
import { resetCluster } from '../../sandbox/reset.ts';
import { Sandbox } from '../../sandbox/sandbox.ts';
import { applyPolicy, cpsApi, getCps, oracleFlows, pod, waitConverged, waitFor } from '../faults/harness.ts';
import { kernelSnapshot } from '../faults/kernel.ts';
import { ProbeLoop } from '../faults/probe-loop.ts';
import { recordRow } from '../faults/report.ts';
import { testCluster } from './env.ts';

const NS = 'hostile-cps';
const NODES = [{ name: 'hc1', podCIDR: '10.244.1.0/24' }, { name: 'hc2', podCIDR: '10.244.2.0/24' }];
let sandbox: Sandbox;
const operators: OperatorHandle[] = [];

const policy: V1NetworkPolicy = {
  apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { namespace: NS, name: 'web' },
  spec: { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ from: [{ podSelector: { matchLabels: { role: 'client' } } }], ports: [{ protocol: 'TCP', port: 80 }] } as never] },
};

before(async () => {
  const cluster = testCluster();
  await resetCluster(cluster.kubeConfig(), new Map([[NS, {}]]));
  sandbox = await Sandbox.start({ cluster, nodes: NODES, prefix: 'fhc', log: silentLogger(), driftSeconds: 0 });
  await sandbox.addPod(pod(NS, 'web', 'hc1', '10.244.1.10', { app: 'web' }));
  await sandbox.addPod(pod(NS, 'other', 'hc1', '10.244.1.11', { role: 'other' }));
  await sandbox.addPod(pod(NS, 'client', 'hc2', '10.244.2.10', { role: 'client' }));
  await applyPolicy(sandbox.kc, policy);
  await waitConverged(sandbox.kc, NODES.map((n) => n.name));
  await sandbox.operator.stop();
});

after(async () => {
  for (const op of operators) await op.stop();
  await sandbox?.stop();
  await sandbox?.kubelet.deleteNamespace(NS).catch(() => undefined);
  for (const n of NODES) await sandbox?.kubelet.deleteNode(n.name).catch(() => undefined);
});

const RANDOM_HASH = `sha256:${'ab'.repeat(32)}`;

async function edit(change: (cps: CompiledPolicySet) => void): Promise<CompiledPolicySet> {
  const cps = (await getCps(sandbox.kc, 'hc1'))!;
  const body = structuredClone(cps);
  delete body.status;
  change(body);
  return (await sandbox.kc.makeApiClient(CustomObjectsApi).replaceClusterCustomObject({ ...cpsApi, name: 'hc1', body })) as CompiledPolicySet;
}

/** The operator comes back and must restore the node's content; ms until the agent enforces it again. */
async function restoreMs(newerThan?: number): Promise<number> {
  const started = performance.now();
  operators.push(await startOperator({ kubeConfig: sandbox.kc, metricsPort: -1, coalesceMs: 20, log: silentLogger() }));
  // An edit that kept the hash looks converged until the operator rewrites it: wait for the rewrite first.
  if (newerThan !== undefined) await waitFor('the operator to rewrite the edited spec', async () => ((await getCps(sandbox.kc, 'hc1'))?.metadata.generation ?? 0) > newerThan, 20_000, 20);
  await waitConverged(sandbox.kc, NODES.map((n) => n.name), 20_000);
  const ms = performance.now() - started;
  await operators.pop()!.stop();
  return ms;
}

async function flows() {
  const names = [...sandbox.pods.keys()];
  return oracleFlows(sandbox.kc, sandbox, names.flatMap((a) => names.filter((b) => b !== a).map((b) => [a, b, 80] as [string, string, number])));
}

/** Applies a hostile edit, checks the rejection, brings the operator back; the row's figures. */
async function rejected(id: string, what: string, how: string, change: (cps: CompiledPolicySet) => void, reason: RegExp, t: { diagnostic(m: string): void }): Promise<void> {
  const netns = sandbox.topology.nodeNetns('hc1');
  const before = await kernelSnapshot(netns);
  const good = (await getCps(sandbox.kc, 'hc1'))!;
  const expected = await flows();
  const hostile = await edit(change);
  const cps = await waitFor('the agent to report the rejection', async () => {
    const c = await getCps(sandbox.kc, 'hc1');
    const d = c?.status?.conditions?.find((x) => x.type === 'Degraded');
    return c?.metadata.generation === hostile.metadata.generation && d?.status === 'True' && d.reason === 'Invalid' ? c : undefined;
  }, 15_000, 50);
  const message = cps.status!.conditions!.find((x) => x.type === 'Degraded')!.message;
  const loop = new ProbeLoop(sandbox.topology, expected, 500);
  await loop.round();
  const kernelKept = JSON.stringify(await kernelSnapshot(netns)) === JSON.stringify(before);
  const statusKept = cps.status?.appliedHash === good.spec.contentHash && cps.status?.observedGeneration === good.metadata.generation;
  const ms = await restoreMs();
  const restored = (await getCps(sandbox.kc, 'hc1'))!;
  t.diagnostic(`${what}: "${message.slice(0, 200)}"; kernel kept ${kernelKept}; restored in ${Math.round(ms)} ms (generation ${hostile.metadata.generation} → ${restored.metadata.generation})`);
  recordRow({
    id,
    fault: `hostile CompiledPolicySet: ${what}`,
    injection: how,
    observed: `rejected whole: Degraded/Invalid "${message.replace(/^rejected, the last good state stays enforced: /, '').slice(0, 140)}"; kernel unchanged, status still reports generation ${good.metadata.generation} enforced; the operator rewrote the right content (generation ${restored.metadata.generation}) on its return`,
    convergeMs: Math.round(ms),
    probes: { failed: loop.stats.failed, sent: loop.stats.sent },
    statesLost: (kernelKept ? 0 : 1) + (statusKept ? 0 : 1),
    test: 'test/integration/hostile-cps.test.ts',
  });
  assert.match(message, reason);
  assert.ok(kernelKept, 'the kernel still holds the last good state');
  assert.ok(statusKept, 'the status still reports the last good generation');
  assert.equal(loop.stats.failed, 0, JSON.stringify(loop.stats.failures));
  assert.notEqual(restored.metadata.generation, hostile.metadata.generation);
  assert.equal(restored.status?.conditions?.find((x) => x.type === 'Degraded')?.status, 'False');
}

test('a rule naming a set the spec does not have is rejected whole and repaired', async (t) => {
  await rejected('07-hostile-cps-bogus-set', 'a rule references a set that does not exist (and a foreign nodeName)',
    'kubectl-style replace as cluster-admin: rules[0].peers = [p-0123456789abcdef], spec.nodeName = hc2, a new contentHash',
    (c) => {
      c.spec.targets[0].ingress!.rules[0].peers = ['p-0123456789abcdef'];
      c.spec.nodeName = 'hc2';
      c.spec.contentHash = RANDOM_HASH;
    }, /nodeName is "hc2".*peer set "p-0123456789abcdef" is missing/s, t);
});

test('huge member lists, plain or as a zip bomb, are rejected whole and repaired', async (t) => {
  const netns = sandbox.topology.nodeNetns('hc1');
  const huge = gzipSync(Array.from({ length: 1_200_000 }, () => '10.99.0.1').join('\n')).toString('base64');
  await rejected('07-hostile-cps-huge-members', 'a member list of 1.2 million entries (the limit is 1 million), gzip-compressed to pass the apiserver',
    'replace as cluster-admin: a new set with membersGzip of 1.2 M entries, referenced by the rule; a new contentHash',
    (c) => {
      c.spec.ipSets.push({ name: 'p-00000000000000b1', kind: 'ip', origin: 'hostile', members: [], membersGzip: huge });
      c.spec.targets[0].ingress!.rules[0].peers.push('p-00000000000000b1');
      c.spec.contentHash = RANDOM_HASH;
    }, /12000\d\d entries exceed the limit of 1000000/, t);
  // A zip bomb: 200 MB of members in 400 KB. Refused before it is inflated.
  const bomb = gzipSync(Buffer.alloc(200 * 1024 * 1024, '10.99.0.1\n'), { level: 9 }).toString('base64');
  const before = await kernelSnapshot(netns);
  const rss = process.memoryUsage().rss;
  const hostile = await edit((c) => {
    c.spec.ipSets.push({ name: 'p-00000000000000b2', kind: 'ip', origin: 'hostile', members: [], membersGzip: bomb });
    c.spec.contentHash = RANDOM_HASH;
  });
  const cps = await waitFor('the agent to refuse the zip bomb', async () => {
    const c = await getCps(sandbox.kc, 'hc1');
    const d = c?.status?.conditions?.find((x) => x.type === 'Degraded');
    return c?.metadata.generation === hostile.metadata.generation && d?.reason === 'Invalid' ? d : undefined;
  }, 15_000, 50);
  const grewMB = (process.memoryUsage().rss - rss) / 2 ** 20;
  t.diagnostic(`zip bomb: "${cps.message.slice(0, 200)}"; rss grew ${grewMB.toFixed(0)} MB`);
  assert.match(cps.message, /expand beyond/);
  assert.deepEqual(await kernelSnapshot(netns), before);
  assert.ok(grewMB < 150, `memory grew ${grewMB} MB`);
  await restoreMs();
});

test('a target holding a pod of another node is rejected whole and repaired', async (t) => {
  await rejected('07-hostile-cps-foreign-pod', "a target lists a pod that is not on this node (another node's address)",
    "replace as cluster-admin: the target's pod set gains 10.244.2.10 (a pod of hc2); a new contentHash",
    (c) => {
      c.spec.ipSets.find((s) => s.name === c.spec.targets[0].podSet)!.members.push('10.244.2.10');
      c.spec.contentHash = RANDOM_HASH;
    }, /pod 10\.244\.2\.10 is not in this node's pod CIDRs/, t);
});

test('an edit that keeps the old contentHash (kubectl edit) is repaired by the operator', async (t) => {
  const netns = sandbox.topology.nodeNetns('hc1');
  const expected = await flows();
  const before = await kernelSnapshot(netns);
  const good = (await getCps(sandbox.kc, 'hc1'))!;
  // Harmful and well formed: the rule admits any peer (the pod "other" among them); contentHash left as it was.
  // (Peer members live in AddressSets now: their hand edits are fault-shared-sets.test.ts's.)
  const hostile = await edit((c) => {
    const rule = c.spec.targets[0].ingress!.rules[0];
    rule.anyPeer = true;
    rule.peers = [];
  });
  assert.equal(hostile.spec.contentHash, good.spec.contentHash);
  // Nothing in the object says it was tampered with, so the agent enforces it: the flow opens.
  await waitFor('the agent to enforce the edited generation', async () => (await getCps(sandbox.kc, 'hc1'))?.status?.observedGeneration === hostile.metadata.generation, 15_000, 50);
  const opened = new ProbeLoop(sandbox.topology, expected, 500);
  await opened.round();
  const ms = await restoreMs(hostile.metadata.generation);
  const restored = (await getCps(sandbox.kc, 'hc1'))!;
  const loop = new ProbeLoop(sandbox.topology, expected, 500);
  await loop.round();
  const kernelBack = JSON.stringify(await kernelSnapshot(netns)) === JSON.stringify(before);
  t.diagnostic(`while edited: ${opened.stats.opened} denied flows open; restored in ${Math.round(ms)} ms (generation ${hostile.metadata.generation} → ${restored.metadata.generation}); kernel as before: ${kernelBack}`);
  recordRow({
    id: '07-hostile-cps-stale-hash',
    fault: 'hostile CompiledPolicySet: a well-formed harmful edit that keeps the old contentHash (a rule made to admit any peer, as `kubectl edit` would)',
    injection: "replace as cluster-admin with the operator stopped; spec.contentHash untouched",
    observed: `nothing in the object marks it, so the agent enforced it (${opened.stats.opened} denied flow(s) open while it stood); the operator compares a spec it did not write with the compile even when the hash matches, and rewrote it (generation ${hostile.metadata.generation} → ${restored.metadata.generation}); kernel back to the state before the edit`,
    convergeMs: Math.round(ms),
    probes: { failed: loop.stats.failed, sent: loop.stats.sent },
    statesLost: kernelBack ? 0 : 1,
    test: 'test/integration/hostile-cps.test.ts',
  });
  assert.ok(restored.metadata.generation! > hostile.metadata.generation!, 'the operator rewrote the spec');
  assert.ok(kernelBack);
  assert.equal(loop.stats.failed, 0, JSON.stringify(loop.stats.failures));
});
