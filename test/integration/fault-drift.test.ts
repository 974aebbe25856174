// Drift: someone flushes one of Fencer's chains or sets, or deletes the FORWARD jump, behind the
// agent's back. The agent's drift check (here every 2 s) finds it and repairs it, and counts it in
// fencer_agent_drift_repairs_total.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { CHAIN_FORWARD, FORWARD_JUMP, targetChain } from '../../agent/dataplane/linux/names.ts';
import type { Sandbox } from '../../sandbox/sandbox.ts';
import { enforcedSpec, oracleFlows, waitFor } from '../faults/harness.ts';
import { inNetns, kernelProblems } from '../faults/kernel.ts';
import { ProbeLoop } from '../faults/probe-loop.ts';
import { recordRow } from '../faults/report.ts';
import { driftRepairs, startWebSandbox, stopWebSandbox } from '../faults/web-sandbox.ts';
import { testCluster } from './env.ts';
import { liveChain } from '../helpers/live-chain.ts';

const NS = 'fault-drift';
const NODES: [string, string] = ['fd1', 'fd2'];
const DRIFT_SECONDS = 2;
let sandbox: Sandbox;

before(async () => {
  sandbox = await startWebSandbox({ cluster: testCluster(), namespace: NS, nodes: NODES, prefix: 'fdr', driftSeconds: DRIFT_SECONDS, dataplane: 'iptables' });
});

after(async () => {
  await stopWebSandbox(sandbox, NS, NODES);
});

const repairs = () => driftRepairs(sandbox, 'fd1');

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
