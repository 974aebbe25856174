// Kernel tools failing for a while (a PATH shim makes iptables-restore, then ipset, exit 1): the agent
// process reports Degraded with the tool's own words, retries with growing back-off, does not crash
// however many failures, keeps the last state enforced, and recovers once the tool works again.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { V1NetworkPolicy } from '@kubernetes/client-node';
import { silentLogger } from '../../runtime/log.ts';
import { resetCluster } from '../../sandbox/reset.ts';
import { Sandbox } from '../../sandbox/sandbox.ts';
import { applyPolicy, getCps, oracleFlows, pod, sleep, waitConverged, waitFor } from '../faults/harness.ts';
import { kernelSnapshot } from '../faults/kernel.ts';
import { ProbeLoop } from '../faults/probe-loop.ts';
import { spawnAgent, type FencerProcess } from '../faults/processes.ts';
import { recordRow } from '../faults/report.ts';
import { createShim, type Shim, type ShimmedTool } from '../faults/shim.ts';
import { testCluster } from './env.ts';

const NS = 'fault-tools';
const NODES = [{ name: 'ft1', podCIDR: '10.244.1.0/24' }, { name: 'ft2', podCIDR: '10.244.2.0/24' }];
const FAIL_SECONDS = Number(process.env.FENCER_TOOL_FAIL_SECONDS ?? 12);
let sandbox: Sandbox;
let shim: Shim;
let logs: string;
const agents: FencerProcess[] = [];
let agent: FencerProcess;

function webPolicy(ports: number[], block?: string): V1NetworkPolicy {
  const from = [{ podSelector: { matchLabels: { role: 'client' } } }, ...(block ? [{ ipBlock: { cidr: block } }] : [])];
  return {
    apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { namespace: NS, name: 'web' },
    spec: { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ from, ports: ports.map((port) => ({ protocol: 'TCP', port })) } as never] },
  };
}

before(async () => {
  const cluster = testCluster();
  logs = mkdtempSync(join(tmpdir(), 'fencer-fault-tools-'));
  shim = createShim();
  await resetCluster(cluster.kubeConfig(), new Map([[NS, {}]]));
  sandbox = await Sandbox.start({ cluster, nodes: NODES, prefix: 'ftl', log: silentLogger(), agents: 'none' });
  await sandbox.addPod(pod(NS, 'web', 'ft1', '10.244.1.10', { app: 'web' }, [80, 81, 82]));
  await sandbox.addPod(pod(NS, 'other', 'ft1', '10.244.1.11', { role: 'other' }));
  await sandbox.addPod(pod(NS, 'client', 'ft2', '10.244.2.10', { role: 'client' }));
  await applyPolicy(sandbox.kc, webPolicy([80]));
  for (const n of NODES) {
    agents.push(await spawnAgent({
      node: n.name, netns: sandbox.topology.nodeNetns(n.name), kubeconfig: cluster.kubeconfigPath, logFile: join(logs, `${n.name}.log`),
      path: n.name === 'ft1' ? shim.path() : undefined, driftSeconds: 5,
    }));
  }
  agent = agents[0];
  await waitConverged(sandbox.kc, NODES.map((n) => n.name));
});

after(async () => {
  for (const a of agents) await a.kill('SIGKILL');
  await sandbox?.stop();
  await sandbox?.kubelet.deleteNamespace(NS).catch(() => undefined);
  for (const n of NODES) await sandbox?.kubelet.deleteNode(n.name).catch(() => undefined);
  shim?.destroy();
  if (process.env.FENCER_KEEP_LOGS) console.error(`agent logs kept in ${logs}`);
  else rmSync(logs, { recursive: true, force: true });
});

// The first change needs only iptables-restore (a port more); the second a new set (an ipBlock peer).
const CASES: Array<{ id: string; what: string; tools: ShimmedTool[]; message: string; policy: V1NetworkPolicy }> = [
  { id: '06-iptables-restore-fails', what: 'iptables-restore', tools: ['iptables-nft-restore', 'iptables-legacy-restore'], message: 'iptables-restore: line 7 failed (injected)', policy: webPolicy([80, 81]) },
  { id: '06-ipset-fails', what: 'ipset (every subcommand)', tools: ['ipset'], message: 'ipset v7.17: Kernel error received: injected', policy: webPolicy([80, 81], '192.0.2.0/24') },
];

for (const c of CASES) {
  test(`${c.what} failing for ${FAIL_SECONDS} s: Degraded with the reason, back-off, no crash, recovery`, async (t) => {
    const kc = sandbox.kc;
    const netns = sandbox.topology.nodeNetns('ft1');
    const before = await kernelSnapshot(netns);
    // Flows judged by the state enforced before the failure, which must stay in force.
    const names = [...sandbox.pods.keys()];
    const flows = await oracleFlows(kc, sandbox, names.flatMap((a) => names.filter((b) => b !== a).flatMap((b) => [[a, b, 80], [a, b, 81], [a, b, 82]] as Array<[string, string, number]>)));
    for (const tool of c.tools) shim.set(tool, { action: 'fail', message: c.message });
    const since = Date.now();
    await applyPolicy(kc, c.policy);
    const loop = new ProbeLoop(sandbox.topology, flows, 400).start();
    let degradedMessage = '';
    try {
      await waitFor('status Degraded with the reason', async () => {
        const d = (await getCps(kc, 'ft1'))?.status?.conditions?.find((x) => x.type === 'Degraded');
        degradedMessage = d?.message ?? '';
        return d?.status === 'True' && d.reason === 'ApplyFailed' && degradedMessage.includes('injected');
      }, 15_000, 100);
      const health = await fetch(`http://127.0.0.1:${agent.metricsPort}/healthz`);
      assert.equal(health.status, 503, '/healthz says degraded');
      await sleep(Math.max(0, FAIL_SECONDS * 1000 - (Date.now() - since)));
    } finally {
      await loop.stop();
    }
    // Apply attempts, from the agent's own log (drift checks also run the tool, but are not retries).
    const failedApplies = agent.log().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { time: string; msg: string; retryMs?: number })
      .filter((l) => l.msg === 'apply failed; previous state kept' && Date.parse(l.time) >= since);
    const attemptTimes = failedApplies.map((l) => Date.parse(l.time));
    const gaps = attemptTimes.slice(1).map((x, i) => x - attemptTimes[i]);
    const toolRuns = shim.calls().filter((x) => x.phase === 'end' && x.exit === 1 && x.at >= since && c.tools.includes(x.tool as ShimmedTool)).length;
    assert.ok(agent.alive(), 'the agent process is still running');
    assert.deepEqual(await kernelSnapshot(netns), before, 'the last good state stays in the kernel');
    shim.clear();
    const cleared = performance.now();
    const convergeMs = await waitConverged(kc, NODES.map((n) => n.name), 40_000);
    const health = await fetch(`http://127.0.0.1:${agent.metricsPort}/healthz`);
    const crashLines = agent.log().split('\n').filter((l) => /panic|uncaught|unhandled|FATAL|"level":60/i.test(l));
    t.diagnostic(`status: "${degradedMessage.slice(0, 160)}"; ${toolRuns} failed tool runs, ${attemptTimes.length} apply attempts over ${FAIL_SECONDS} s, gaps ${gaps.map((g) => g).join(', ')} ms; recovered ${Math.round(performance.now() - cleared)} ms after the tool was fixed; probes ${loop.stats.sent} sent, ${loop.stats.failed} failed`);
    recordRow({
      id: c.id,
      fault: `${c.what} failing for ${FAIL_SECONDS} s while a new policy generation waits`,
      injection: `PATH shim makes ${c.tools.join(', ')} exit 1 with "${c.message}", then works again`,
      observed: `status Degraded/ApplyFailed quoting the tool's stderr, /healthz 503; ${attemptTimes.length} attempts with back-off (gaps ${gaps.slice(0, 8).map((g) => (g / 1000).toFixed(1)).join(', ')} s); process never exited, nothing logged at fatal level; last good state kept in the kernel; recovered ${((performance.now() - cleared) / 1000).toFixed(1)} s after the tool was fixed (the pending back-off)`,
      convergeMs: Math.round(convergeMs),
      probes: { failed: loop.stats.failed, sent: loop.stats.sent },
      statesLost: 0,
      test: 'test/integration/fault-kernel-tools.test.ts',
    });
    assert.equal(health.status, 200, '/healthz is ok again');
    assert.deepEqual(crashLines, []);
    assert.equal(loop.stats.failed, 0, JSON.stringify(loop.stats.failures));
    assert.ok(attemptTimes.length >= 3, `retried (${attemptTimes.length} attempts)`);
    assert.ok(attemptTimes.length <= 12, `no retry storm: ${attemptTimes.length} attempts in ${FAIL_SECONDS} s`);
    if (FAIL_SECONDS >= 10) assert.ok(Math.max(...gaps) >= 2000, `the back-off grows: gaps ${gaps.join(', ')} ms`);
  });
}
