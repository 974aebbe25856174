// Drift: someone flushes one of Fencer's chains or sets, or deletes the FORWARD jump, behind the
// agent's back. The agent's drift check (here every 2 s) finds it and repairs it, and counts it in
// fencer_agent_drift_repairs_total.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { V1NetworkPolicy } from '@kubernetes/client-node';
import { CHAIN_FORWARD, FORWARD_JUMP, targetChain } from '../../agent/dataplane/linux/names.ts';
import { silentLogger } from '../../runtime/log.ts';
import { resetCluster } from '../../sandbox/reset.ts';
import { Sandbox } from '../../sandbox/sandbox.ts';
import { applyPolicy, enforcedSpec, oracleFlows, pod, waitConverged, waitFor } from '../faults/harness.ts';
import { inNetns, kernelProblems } from '../faults/kernel.ts';
import { ProbeLoop } from '../faults/probe-loop.ts';
import { metricValue } from '../faults/processes.ts';
import { recordRow } from '../faults/report.ts';
import { testCluster } from './env.ts';
import { liveChain } from '../helpers/live-chain.ts';

const NS = 'fault-drift';
const NODES = [{ name: 'fd1', podCIDR: '10.244.1.0/24' }, { name: 'fd2', podCIDR: '10.244.2.0/24' }];
const DRIFT_SECONDS = 2;
let sandbox: Sandbox;

const policy: V1NetworkPolicy = {
  apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { namespace: NS, name: 'web' },
  spec: { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ from: [{ podSelector: { matchLabels: { role: 'client' } } }], ports: [{ protocol: 'TCP', port: 80 }] } as never] },
};

before(async () => {
  const cluster = testCluster();
  await resetCluster(cluster.kubeConfig(), new Map([[NS, {}]]));
  sandbox = await Sandbox.start({ cluster, nodes: NODES, prefix: 'fdr', log: silentLogger(), driftSeconds: DRIFT_SECONDS });
  await sandbox.addPod(pod(NS, 'web', 'fd1', '10.244.1.10', { app: 'web' }));
  await sandbox.addPod(pod(NS, 'other', 'fd1', '10.244.1.11', { role: 'other' }));
  await sandbox.addPod(pod(NS, 'client', 'fd2', '10.244.2.10', { role: 'client' }));
  await applyPolicy(sandbox.kc, policy);
  await waitConverged(sandbox.kc, NODES.map((n) => n.name));
});

after(async () => {
  await sandbox?.stop();
  await sandbox?.kubelet.deleteNamespace(NS).catch(() => undefined);
  for (const n of NODES) await sandbox?.kubelet.deleteNode(n.name).catch(() => undefined);
});

async function repairs(): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${sandbox.agents.get('fd1')!.metricsPort}/node-metrics`);
  return metricValue(await res.text(), 'fencer_agent_drift_repairs_total');
}

const CASES: Array<{ id: string; fault: string; how: string; inject: (netns: string, spec: Awaited<ReturnType<typeof enforcedSpec>>) => string[] }> = [
  {
    id: '05-drift-chain', fault: "a Fencer chain flushed (the target's ingress chain)", how: 'iptables -F FENCER-I-<target> in the node',
    inject: (_ns, spec) => ['iptables', '-F', targetChain('ingress', spec.targets[0].podSet)],
  },
  {
    id: '05-drift-set', fault: 'a Fencer set flushed (the allowed peers)', how: 'ipset flush FENCER-p-<peers> in the node',
    inject: (_ns, spec) => ['ipset', 'flush', `FENCER-${spec.targets[0].ingress!.rules[0].peers[0]}`],
  },
  {
    id: '05-drift-forward-jump', fault: 'the FORWARD jump to FENCER-FORWARD deleted', how: `iptables -D FORWARD … -j ${CHAIN_FORWARD} in the node`,
    inject: () => ['iptables', '-D', 'FORWARD', ...FORWARD_JUMP],
  },
];

for (const c of CASES) {
  test(`drift repaired within the drift interval: ${c.fault}`, async (t) => {
    const netns = sandbox.topology.nodeNetns('fd1');
    const spec = await enforcedSpec(sandbox.kc, 'fd1');
    assert.deepEqual(await kernelProblems(netns, spec), []);
    const names = [...sandbox.pods.keys()];
    const flows = await oracleFlows(sandbox.kc, sandbox, names.flatMap((a) => names.filter((b) => b !== a).map((b) => [a, b, 80] as [string, string, number])));
    const counted = await repairs();
    const cmd = c.inject(netns, spec);
    // A set still exists under one of its two names: flush whichever the rules use.
    if (cmd[0] === 'ipset') {
      const listed = await inNetns(netns, ['ipset', 'list', '-n']);
      cmd[2] = listed.split('\n').find((n) => n === cmd[2] || n === `${cmd[2]}-1`) ?? cmd[2];
    }
    // So does a chain (two generations): flush the one FENCER-FORWARD leads to.
    if (cmd[1] === '-F') cmd[2] = liveChain(await inNetns(netns, ['iptables-save', '-t', 'filter']), cmd[2]);
    await inNetns(netns, cmd);
    const injected = performance.now();
    assert.notDeepEqual(await kernelProblems(netns, spec), [], 'the fault shows');
    await waitFor('the drift to be repaired', async () => (await kernelProblems(netns, spec)).length === 0, (DRIFT_SECONDS + 5) * 1000, 50);
    const repairMs = performance.now() - injected;
    await waitFor('the repair to be counted', async () => (await repairs()) > counted, 2000, 50);
    const loop = new ProbeLoop(sandbox.topology, flows, 500);
    await loop.round();
    t.diagnostic(`repaired ${Math.round(repairMs)} ms after the fault (drift interval ${DRIFT_SECONDS} s); fencer_agent_drift_repairs_total ${counted} → ${await repairs()}; probes ${loop.stats.sent} sent, ${loop.stats.failed} failed`);
    recordRow({
      id: c.id,
      fault: `drift: ${c.fault}`,
      injection: `${c.how}; the agent's drift check runs every ${DRIFT_SECONDS} s`,
      observed: `found by the next drift check and repaired ${(repairMs / 1000).toFixed(1)} s after the fault; fencer_agent_drift_repairs_total +${(await repairs()) - counted}; every pair probed right after the repair as the policies say`,
      convergeMs: Math.round(repairMs),
      probes: { failed: loop.stats.failed, sent: loop.stats.sent },
      statesLost: 0,
      test: 'test/integration/fault-drift.test.ts',
    });
    assert.ok(repairMs <= DRIFT_SECONDS * 1000 + 1500, `repaired after ${Math.round(repairMs)} ms`);
    assert.equal(loop.stats.failed, 0, JSON.stringify(loop.stats.failures));
  });
}
