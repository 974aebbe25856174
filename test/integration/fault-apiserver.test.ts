// kube-apiserver and etcd stopped for 60 s and started again (same ports, same data), on a control
// plane of this test's own: the agents keep enforcing the last state the whole time (a probe loop
// runs throughout), every watch resumes (also from a compacted resourceVersion: 410 Gone), and a
// change made afterwards is enforced everywhere. The outage runs once per `npm test`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CustomObjectsApi, Watch, type V1NetworkPolicy } from '@kubernetes/client-node';
import { silentLogger } from '../../runtime/log.ts';
import { Sandbox } from '../../sandbox/sandbox.ts';
import { startControlPlane, type ControlPlane } from '../../localcluster/control-plane.ts';
import { kubelet } from '../../localcluster/kubelet.ts';
import { compactEtcd } from '../faults/etcd.ts';
import { applyPolicy, cpsApi, getCps, oracleFlows, pod, sleep, waitConverged, waitFor } from '../faults/harness.ts';
import { ProbeLoop } from '../faults/probe-loop.ts';
import { recordRow } from '../faults/report.ts';

const OUTAGE_MS = Number(process.env.FENCER_OUTAGE_SECONDS ?? 60) * 1000;
const NS = 'outage';
const NODES = [{ name: 'out1', podCIDR: '10.244.1.0/24' }, { name: 'out2', podCIDR: '10.244.2.0/24' }];

function webPolicy(port: number): V1NetworkPolicy {
  return {
    apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { namespace: NS, name: 'web' },
    spec: { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ from: [{ podSelector: { matchLabels: { role: 'client' } } }], ports: [{ protocol: 'TCP', port }] } as never] },
  };
}

/** The first event a watch from `resourceVersion` delivers: 410 Gone when that version is compacted away. */
async function watchFrom(cp: ControlPlane, resourceVersion: string): Promise<{ type: string; code?: number }> {
  return new Promise((resolve, reject) => {
    let req: { abort(): void } | undefined;
    const finish = (v: { type: string; code?: number }) => {
      req?.abort();
      resolve(v);
    };
    void new Watch(cp.kubeConfig()).watch(`/apis/${cpsApi.group}/${cpsApi.version}/${cpsApi.plural}`, { resourceVersion },
      (type, obj: { code?: number }) => finish({ type, code: obj?.code }),
      (err) => (err ? finish({ type: 'DONE', code: (err as { statusCode?: number }).statusCode }) : finish({ type: 'DONE' })))
      .then((r) => { req = r; }, reject);
  });
}

test(`kube-apiserver and etcd down for ${OUTAGE_MS / 1000} s: enforcement holds, watches resume after 410 Gone, everything converges`, async (t) => {
  const cp = await startControlPlane({ binDir: process.env.FENCER_TEST_BIN_DIR || undefined });
  let sandbox: Sandbox | undefined;
  try {
    await cp.installCrds();
    const kc = cp.kubeConfig();
    await kubelet(kc).createNamespace(NS);
    sandbox = await Sandbox.start({ cluster: cp, nodes: NODES, prefix: 'fout', log: silentLogger(), driftSeconds: 5 });
    await sandbox.addPod(pod(NS, 'web', 'out1', '10.244.1.10', { app: 'web' }, [80, 81]));
    await sandbox.addPod(pod(NS, 'other', 'out1', '10.244.1.11', { role: 'other' }));
    await sandbox.addPod(pod(NS, 'client', 'out2', '10.244.2.10', { role: 'client' }));
    await applyPolicy(kc, webPolicy(80));
    const nodes = NODES.map((n) => n.name);
    await waitConverged(kc, nodes);
    const names = [...sandbox.pods.keys()];
    const pairs = names.flatMap((a) => names.filter((b) => b !== a).flatMap((b) => [[a, b, 80], [a, b, 81]] as Array<[string, string, number]>));
    const loop = new ProbeLoop(sandbox.topology, await oracleFlows(kc, sandbox, pairs), 400);
    await loop.round();
    assert.equal(loop.stats.failed, 0, `before the outage: ${JSON.stringify(loop.stats.failures)}`);
    const seenVersion = ((await kc.makeApiClient(CustomObjectsApi).listClusterCustomObject(cpsApi)) as { metadata: { resourceVersion: string } }).metadata.resourceVersion;

    loop.start();
    const down = performance.now();
    const compactedAt = await compactEtcd(cp.etcdUrl);
    await cp.stopServers();
    await sleep(Math.max(0, OUTAGE_MS - (performance.now() - down)));
    const outageMs = performance.now() - down;
    await cp.startServers();
    const up = performance.now();
    // Right after start-up the watch cache may still answer 429 (initializing): ask again.
    let gone = await watchFrom(cp, seenVersion);
    for (let i = 0; i < 60 && gone.code === 429; i++) {
      await sleep(500);
      gone = await watchFrom(cp, seenVersion);
    }
    await sleep(1000);
    const stats = await loop.stop();
    t.diagnostic(`outage ${Math.round(outageMs)} ms; etcd compacted at revision ${compactedAt} (watches were at ${seenVersion}); watch from ${seenVersion} after restart: ${JSON.stringify(gone)}; probes ${stats.sent} sent, ${stats.failed} failed, ${stats.errors} errors, ${stats.rounds} rounds`);
    assert.ok(gone.code === 410 || gone.type === 'ERROR', `a watch from the old resourceVersion gets 410 Gone (got ${JSON.stringify(gone)})`);

    // Watches resumed: a policy change made now is compiled, written and enforced on every node, and a
    // CompiledPolicySet deleted by hand is written again.
    await applyPolicy(kc, webPolicy(81));
    const convergeMs = await waitConverged(kc, nodes, 90_000);
    const sinceUp = performance.now() - up;
    await kc.makeApiClient(CustomObjectsApi).deleteClusterCustomObject({ ...cpsApi, name: 'out2' });
    await waitFor('the deleted CompiledPolicySet to be written again', async () => (await getCps(kc, 'out2')) !== undefined, 30_000, 100);
    await waitConverged(kc, nodes, 30_000);
    const check = new ProbeLoop(sandbox.topology, await oracleFlows(kc, sandbox, pairs), 400);
    await check.round();
    t.diagnostic(`change after restart enforced in ${Math.round(convergeMs)} ms (${Math.round(sinceUp)} ms after the apiserver was ready)`);
    recordRow({
      id: '04-apiserver-outage',
      fault: `kube-apiserver and etcd stopped for ${Math.round(outageMs / 1000)} s, then started again`,
      injection: 'stopServers()/startServers() on a control plane of its own (same ports and etcd data); etcd revision moved on and compacted before the stop, so every watch resumes from a compacted resourceVersion',
      observed: `agents enforced the last state throughout (probe loop during the whole outage); a watch from the pre-outage resourceVersion got ${gone.code ?? gone.type} after the restart; operator and agent watches relisted; a policy change made after the restart enforced on every node ${(sinceUp / 1000).toFixed(1)} s after the apiserver was ready (watch back-off capped at 30 s); a hand-deleted CompiledPolicySet rewritten`,
      convergeMs: Math.round(sinceUp),
      probes: { failed: stats.failed + check.stats.failed, sent: stats.sent + check.stats.sent },
      statesLost: 0,
      test: 'test/integration/fault-apiserver.test.ts',
    });
    assert.equal(stats.failed, 0, `during the outage: ${JSON.stringify(stats.failures)}`);
    assert.ok(stats.rounds >= OUTAGE_MS / 5000, `the probe loop ran through the outage (${stats.rounds} rounds)`);
    assert.equal(check.stats.failed, 0, `after the change: ${JSON.stringify(check.stats.failures)}`);
  } finally {
    await sandbox?.stop();
    await cp.stop();
  }
});
