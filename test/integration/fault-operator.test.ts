// The operator's leader killed (SIGKILL) in the middle of a burst of changes, with two `fencer operator`
// processes on the default lease timings (10 s lease, 2 s retry): the standby takes over and converges
// the cluster, no CompiledPolicySet is lost or left stale (a node deleted and one created while nobody
// led included), and a concurrent hand editor provoking 409s does not make the writes storm.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoordinationV1Api, CustomObjectsApi, PatchStrategy, setHeaderOptions, type V1NetworkPolicy } from '@kubernetes/client-node';
import type { CompiledPolicySet } from '../../crds/types.ts';
import { MANAGED_BY_LABEL } from '../../operator/cps-object.ts';
import { ResilientInformer } from '../../runtime/informer.ts';
import { silentLogger } from '../../runtime/log.ts';
import { kubelet } from '../../localcluster/kubelet.ts';
import { applyPolicy, cpsApi, expectedSpecs, getCps, sleep, waitFor } from '../faults/harness.ts';
import { metricValue, spawnOperator, type FencerProcess } from '../faults/processes.ts';
import { recordRow } from '../faults/report.ts';
import { testCluster } from './env.ts';

const run = randomBytes(2).toString('hex');
const NS = `fault-op-${run}`;
const NODE_COUNT = 5;

function policy(i: number, role: string): V1NetworkPolicy {
  return {
    apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { namespace: NS, name: `p${i}` },
    spec: { podSelector: { matchLabels: { app: `a${i % 3}` } }, ingress: [{ from: [{ podSelector: { matchLabels: { role } } }], ports: [{ protocol: 'TCP', port: 80 + i }] } as never] },
  };
}

test('the leader killed during a burst: the standby converges every node, nothing is lost or stale, no write storm on 409s', async (t) => {
  const cluster = testCluster();
  await cluster.installCrds();
  const kc = cluster.kubeConfig();
  const k = kubelet(kc);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const logs = mkdtempSync(join(tmpdir(), 'fencer-fault-op-'));
  const nodes = Array.from({ length: NODE_COUNT }, (_, i) => `fo${i + 1}-${run}`);
  const late = `fo${NODE_COUNT + 1}-${run}`;
  const lease = `fencer-fault-${run}`;
  const procs: FencerProcess[] = [];
  // Every CompiledPolicySet version of our nodes, seen by our own watch: spec writes are generation bumps.
  const generations = new Map<string, Set<number>>();
  let versions = 0;
  const watch = new ResilientInformer<CompiledPolicySet & { metadata: { name: string } }>({
    name: 'cps', kc, path: `/apis/${cpsApi.group}/${cpsApi.version}/${cpsApi.plural}`, log: silentLogger(),
    list: async () => (await custom.listClusterCustomObject(cpsApi)) as never,
  });
  watch.onChange((type, o) => {
    if (type !== 'upsert' || (!nodes.includes(o.metadata.name) && o.metadata.name !== late)) return;
    versions++;
    const g = generations.get(o.metadata.name) ?? new Set<number>();
    g.add(o.metadata.generation ?? 0);
    generations.set(o.metadata.name, g);
  });
  try {
    await k.createNamespace(NS);
    for (const [i, n] of nodes.entries()) await k.createNode(n, `10.${150 + i}.0.0/24`);
    for (let i = 0; i < 30; i++) await k.createPod({ namespace: NS, name: `pod${i}`, node: nodes[i % NODE_COUNT], labels: { app: `a${i % 3}`, role: i % 2 ? 'x' : 'y' } });
    for (let i = 0; i < 5; i++) await applyPolicy(kc, policy(i, 'x'));
    await watch.start();

    const spawn = (identity: string) => spawnOperator({ kubeconfig: cluster.kubeconfigPath, identity, namespace: 'kube-system', leaseName: lease, logFile: join(logs, `${identity}.log`) });
    procs.push(await spawn('replica-a'));
    await waitFor('replica-a to lead', async () => metricValue(await procs[0].metrics('/metrics'), 'fencer_operator_leader') === 1, 30_000, 100);
    procs.push(await spawn('replica-b'));
    await waitFor('replica-b to be ready', async () => (await fetch(`http://127.0.0.1:${procs[1].metricsPort}/readyz`)).status === 200, 30_000, 100);
    const [leader, standby] = procs;
    const stale = async () => {
      const want = await expectedSpecs(kc);
      const out: string[] = [];
      for (const n of [...nodes, late]) {
        const cps = await getCps(kc, n);
        const spec = want.get(n);
        if (!spec && cps) out.push(`${n}: CompiledPolicySet of a deleted node`);
        else if (spec && !cps) out.push(`${n}: missing`);
        else if (spec && cps && (cps.spec.contentHash !== spec.contentHash || cps.metadata.labels?.[MANAGED_BY_LABEL] !== 'fencer')) out.push(`${n}: stale`);
      }
      return out;
    };
    await waitFor('the first convergence', async () => (await stale()).length === 0, 30_000, 100);

    // A hand editor annotating CompiledPolicySets during the burst: every update the operator sends
    // with an older resourceVersion gets a 409.
    let edits = 0;
    let editing = true;
    const editor = (async () => {
      while (editing) {
        const name = nodes[edits % NODE_COUNT];
        try {
          await custom.patchClusterCustomObject({ ...cpsApi, name, body: [{ op: 'add', path: '/metadata/annotations', value: { 'example.com/touched': String(edits) } }] }, setHeaderOptions('Content-Type', PatchStrategy.JsonPatch));
          edits++;
        } catch { /* a conflict or the object gone: try the next */ }
        await sleep(40);
      }
    })();

    const burst = async (from: number, to: number) => {
      const changes: Promise<unknown>[] = [];
      for (let i = from; i < to; i++) {
        changes.push(k.labelPod(NS, `pod${i % 30}`, { role: i % 2 ? 'y' : 'x', step: String(i) }));
        if (i % 5 === 0) changes.push(applyPolicy(kc, policy((i / 5) % 5, i % 2 ? 'y' : 'x')));
        if (changes.length >= 8) await Promise.all(changes.splice(0));
      }
      await Promise.all(changes);
    };
    await burst(0, 40);
    const leaderAtKill = await leader.metrics('/metrics');
    const killedAt = performance.now();
    await leader.kill('SIGKILL');
    // While nobody leads: more changes, a node goes and another comes.
    await burst(40, 80);
    await k.deleteNode(nodes[NODE_COUNT - 1]);
    await k.createNode(late, `10.${150 + NODE_COUNT}.0.0/24`);
    await k.createPod({ namespace: NS, name: 'late', node: late, labels: { app: 'a0', role: 'x' } });
    await waitFor('the standby to lead', async () => metricValue(await standby.metrics('/metrics'), 'fencer_operator_leader') === 1, 20_000, 100);
    const takeoverMs = performance.now() - killedAt;
    let lastStale: string[] = [];
    await waitFor('every CompiledPolicySet to match the compile', async () => (lastStale = await stale()).length === 0, 30_000, 100)
      .catch((e: Error) => assert.fail(`${e.message}: ${lastStale.join('; ')}`));
    const convergeMs = performance.now() - killedAt;
    editing = false;
    await editor;
    await sleep(2000); // anything still retrying would show up now
    const after = await standby.metrics('/metrics');
    const w = (text: string, result: string) => metricValue(text, 'fencer_cps_writes_total', { result });
    const standbyWrites = { created: w(after, 'created'), updated: w(after, 'updated'), deleted: w(after, 'deleted'), conflicts: w(after, 'conflict'), errors: w(after, 'error') };
    const specWrites = [...generations.values()].reduce((n, g) => n + g.size, 0);
    const lostOrStale = (await stale()).length;
    t.diagnostic(`takeover ${Math.round(takeoverMs)} ms, converged ${Math.round(convergeMs)} ms after the kill; hand edits ${edits}; new leader ${JSON.stringify(standbyWrites)}; old leader had written ${w(leaderAtKill, 'updated')} updates, ${w(leaderAtKill, 'conflict')} conflicts; spec versions seen ${specWrites} over ${generations.size} objects, ${versions} object versions in all`);
    recordRow({
      id: '03-operator-leader-kill',
      fault: 'operator leader SIGKILLed in the middle of a burst of 80 pod label changes and 16 policy updates; a node deleted and one created while nobody leads',
      injection: `two \`fencer operator\` processes (default lease: 10 s, retry 2 s); SIGKILL of the leader's process group; a hand editor annotates the CompiledPolicySets every 40 ms to provoke 409s (${edits} edits, kept up until convergence)`,
      observed: `standby led ${(takeoverMs / 1000).toFixed(1)} s after the kill; old leader until the kill: ${w(leaderAtKill, 'updated')} updates, ${w(leaderAtKill, 'conflict')} conflicts; new leader: ${standbyWrites.created} created, ${standbyWrites.updated} updated, ${standbyWrites.deleted} deleted, ${standbyWrites.conflicts} conflicts (409) re-read and retried, ${standbyWrites.errors} errors; no CompiledPolicySet missing, stale or left for the deleted node`,
      convergeMs: Math.round(convergeMs),
      probes: null,
      statesLost: lostOrStale,
      test: 'test/integration/fault-operator.test.ts',
    });
    assert.equal(lostOrStale, 0);
    assert.ok(takeoverMs < 15_000, `the standby led ${takeoverMs} ms after the kill (lease 10 s + retry 2 s)`);
    assert.equal(standbyWrites.errors, 0);
    // No storm: each conflict costs one re-read and at most one more write, and a node is written once
    // per coalesced change it actually saw, not once per attempt.
    assert.ok(standbyWrites.conflicts <= edits + NODE_COUNT + 1, `${standbyWrites.conflicts} conflicts for ${edits} hand edits`);
    assert.ok(standbyWrites.updated + standbyWrites.created <= 4 * (NODE_COUNT + 1), `the new leader wrote ${standbyWrites.updated + standbyWrites.created} specs for ${NODE_COUNT + 1} nodes`);
  } finally {
    await watch.stop();
    for (const p of procs) await p.kill('SIGKILL');
    await kc.makeApiClient(CoordinationV1Api).deleteNamespacedLease({ namespace: 'kube-system', name: lease }).catch(() => undefined);
    await k.deleteNamespace(NS).catch(() => undefined);
    for (const n of [...nodes, late]) {
      await k.deleteNode(n).catch(() => undefined);
      await custom.deleteClusterCustomObject({ ...cpsApi, name: n }).catch(() => undefined);
    }
    if (process.env.FENCER_KEEP_LOGS) console.error(`operator logs kept in ${logs}`);
    else rmSync(logs, { recursive: true, force: true });
  }
});
