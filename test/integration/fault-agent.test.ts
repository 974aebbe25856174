// Faults of the agent process, on the sandbox with real packets: agents run as `fencer agent --netns`
// processes behind a kernel-tool shim (test/faults/shim.ts) so they can be killed at a chosen step of
// an apply and their kernel calls counted.
//  1. SIGKILL in the middle of applies, repeatedly, while policies and pods change: after restart
//     the node converges to the latest generation, no temporary sets or stale chains remain, and a
//     continuous probe loop never sees a flow open that every generation denies.
//  2. A restart with nothing changed makes zero kernel changes and fails zero probes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { V1NetworkPolicy } from '@kubernetes/client-node';
import { silentLogger } from '../../runtime/log.ts';
import { resetCluster } from '../../sandbox/reset.ts';
import { Sandbox } from '../../sandbox/sandbox.ts';
import { applyPolicy, enforcedSpec, oracleFlows, pod, sleep, waitConverged, waitFor } from '../faults/harness.ts';
import { kernelProblems, kernelSnapshot } from '../faults/kernel.ts';
import { ProbeLoop, type LoopFlow } from '../faults/probe-loop.ts';
import { metricValue, spawnAgent, type FencerProcess } from '../faults/processes.ts';
import { recordRow } from '../faults/report.ts';
import { createShim, type Shim, type ShimmedTool } from '../faults/shim.ts';
import { testCluster } from './env.ts';

const NS = 'fault-agent';
const NODES = [{ name: 'fa1', podCIDR: '10.244.1.0/24' }, { name: 'fa2', podCIDR: '10.244.2.0/24' }];
const KILLS = Number(process.env.FENCER_FAULT_KILLS ?? 5);

let sandbox: Sandbox;
let logs: string;
const shims = new Map<string, Shim>();
const agents = new Map<string, FencerProcess>();
let generation = 0;

/** Every generation allows client → web:80 and never other → web; ports and the ipBlock change each time (new rules and sets). */
function webPolicy(g: number): V1NetworkPolicy {
  return {
    apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { namespace: NS, name: 'web' },
    spec: {
      podSelector: { matchLabels: { app: 'web' } },
      ingress: [{
        from: [{ podSelector: { matchLabels: { role: 'client' } } }, { ipBlock: { cidr: `192.0.2.${(g % 250) + 1}/32` } }],
        ports: [{ protocol: 'TCP', port: 80 }, { protocol: 'TCP', port: 8000 + g }, ...(g % 2 ? [{ protocol: 'TCP', port: 81 }] : [])],
      } as never],
    },
  };
}

async function startAgent(node: string): Promise<FencerProcess> {
  const p = await spawnAgent({
    node, netns: sandbox.topology.nodeNetns(node), kubeconfig: testCluster().kubeconfigPath,
    logFile: join(logs, `agent-${node}.log`), path: shims.get(node)!.path(),
  });
  agents.set(node, p);
  return p;
}

async function nextGeneration(): Promise<void> {
  generation++;
  await applyPolicy(sandbox.kc, webPolicy(generation));
  // The guest moves in and out of the allowed peers: a member change in the same apply as a rule change.
  await sandbox.kubelet.labelPod(NS, 'guest', { role: generation % 2 ? 'client' : 'visitor' });
}

function tail(p: FencerProcess | undefined): string {
  return p ? p.log().trim().split('\n').slice(-15).join('\n') : '';
}

before(async () => {
  const cluster = testCluster();
  logs = mkdtempSync(join(tmpdir(), 'fencer-fault-agent-'));
  await resetCluster(cluster.kubeConfig(), new Map([[NS, {}]]));
  sandbox = await Sandbox.start({ cluster, nodes: NODES, prefix: 'fak', log: silentLogger(), agents: 'none' });
  for (const n of NODES) shims.set(n.name, createShim());
  await sandbox.addPod(pod(NS, 'web', 'fa1', '10.244.1.10', { app: 'web' }, [80, 81]));
  await sandbox.addPod(pod(NS, 'other', 'fa1', '10.244.1.11', { role: 'other' }));
  await sandbox.addPod(pod(NS, 'client', 'fa2', '10.244.2.10', { role: 'client' }));
  await sandbox.addPod(pod(NS, 'guest', 'fa2', '10.244.2.11', { role: 'visitor' }));
  await nextGeneration();
  for (const n of NODES) await startAgent(n.name);
  await waitConverged(sandbox.kc, NODES.map((n) => n.name));
});

after(async () => {
  for (const a of agents.values()) await a.kill('SIGKILL');
  await sandbox?.stop();
  await sandbox?.kubelet.deleteNamespace(NS).catch(() => undefined);
  for (const n of NODES) await sandbox?.kubelet.deleteNode(n.name).catch(() => undefined);
  for (const s of shims.values()) s.destroy();
  if (process.env.FENCER_KEEP_LOGS) console.error(`agent logs kept in ${logs}`);
  else rmSync(logs, { recursive: true, force: true });
});

interface Stage { tools: ShimmedTool[]; match: string; what: string }
const STAGES: Stage[] = [
  { tools: ['iptables-nft-restore', 'iptables-legacy-restore'], match: '*', what: 'new sets built, iptables-restore not committed' },
  { tools: ['ipset'], match: 'restore', what: 'ipset restore not run yet' },
  { tools: ['ipset'], match: 'restore -exist', what: 'rules switched, old sets not destroyed yet' },
];

test('an agent killed in the middle of applies converges to the latest generation, leaves nothing behind and never opens a denied flow', async (t) => {
  const web = sandbox.pods.get(`${NS}/web`)!;
  const client = sandbox.pods.get(`${NS}/client`)!;
  const other = sandbox.pods.get(`${NS}/other`)!;
  const guest = sandbox.pods.get(`${NS}/guest`)!;
  const flows: LoopFlow[] = [
    { name: 'client → web:80 (every generation allows)', from: client.handle, to: web.handle, port: 80, expect: 'open' },
    { name: 'other → web:80 (every generation denies)', from: other.handle, to: web.handle, port: 80, expect: 'closed' },
    { name: 'other → web:81 (every generation denies)', from: other.handle, to: web.handle, port: 81, expect: 'closed' },
    { name: 'client → web:81 (odd generations)', from: client.handle, to: web.handle, port: 81, expect: 'any' },
    { name: 'guest → web:80 (odd generations)', from: guest.handle, to: web.handle, port: 80, expect: 'any' },
    { name: 'web → client:80 (not isolated)', from: web.handle, to: client.handle, port: 80, expect: 'open' },
  ];
  const loop = new ProbeLoop(sandbox.topology, flows, 500).start();
  const shim = shims.get('fa1')!;
  const netns = sandbox.topology.nodeNetns('fa1');
  const kills: string[] = [];
  let leftoversSeen = 0;
  let lastRestart = 0;
  try {
    for (let i = 0; i < KILLS; i++) {
      const stage = STAGES[i % STAGES.length];
      for (const tool of stage.tools) shim.set(tool, { action: 'delay', ms: 1500, match: stage.match });
      const since = Date.now();
      await nextGeneration();
      await waitFor(`the agent to reach "${stage.what}"`, async () => shim.calls().some((c) => c.phase === 'start' && c.at >= since
        && stage.tools.includes(c.tool as ShimmedTool) && (stage.match === '*' || c.args[0] === stage.match || c.args.join(' ') === stage.match)), 15_000, 20)
        .catch((e: Error) => assert.fail(`${e.message}\n${tail(agents.get('fa1'))}\n${shim.calls().slice(-25).map((c) => `${c.at} ${c.phase} ${c.tool} ${c.args.join(' ')}`).join('\n')}`));
      await sleep(Math.floor(Math.random() * 300));
      const code = await agents.get('fa1')!.kill('SIGKILL');
      kills.push(`${stage.what} (exit ${code})`);
      shim.clear();
      const left = await kernelProblems(netns, await enforcedSpec(sandbox.kc, 'fa1')).catch(() => []);
      if (left.some((p) => /no rule references/.test(p))) leftoversSeen++;
      // Changes keep coming while the agent is down.
      await nextGeneration();
      await sleep(300);
      lastRestart = performance.now();
      await startAgent('fa1');
    }
    const convergeMs = await waitConverged(sandbox.kc, NODES.map((n) => n.name), 60_000);
    const sinceRestart = performance.now() - lastRestart;
    const stats = await loop.stop();
    const problems = await kernelProblems(netns, await enforcedSpec(sandbox.kc, 'fa1'), 3000);
    const problems2 = await kernelProblems(sandbox.topology.nodeNetns('fa2'), await enforcedSpec(sandbox.kc, 'fa2'), 3000);
    t.diagnostic(`kills: ${kills.join('; ')}; leftovers seen right after a kill: ${leftoversSeen}; converged ${Math.round(sinceRestart)} ms after the last restart (wait ${Math.round(convergeMs)} ms); probes ${stats.sent} sent, ${stats.opened} opened, ${stats.closed} closed, ${stats.errors} errors; seen ${JSON.stringify(stats.seen)}`);
    recordRow({
      id: '01-agent-sigkill',
      fault: `agent SIGKILLed in the middle of an apply, ${KILLS} times, while the policy and a pod's labels change`,
      injection: 'process group SIGKILL while a shimmed ipset/iptables-restore/ipset destroy is held for 1.5 s (rotating the step); one more change while it is down; restart',
      observed: `converged to the latest generation (${generation}) on every node; ${leftoversSeen} of ${KILLS} kills left unreferenced sets, all removed by the next apply; no stale chain or set; no flow denied by every generation seen open`,
      convergeMs: Math.round(sinceRestart),
      probes: { failed: stats.failed, sent: stats.sent },
      statesLost: problems.length + problems2.length,
      test: 'test/integration/fault-agent.test.ts',
    });
    assert.deepEqual(problems, [], 'the killed node holds exactly its latest spec: no temporary sets, no stale chains');
    assert.deepEqual(problems2, []);
    assert.equal(stats.opened, 0, `a flow every generation denies was seen open: ${JSON.stringify(stats.failures)}`);
    assert.equal(stats.closed, 0, `a flow every generation allows was seen closed: ${JSON.stringify(stats.failures)}`);
    assert.ok(stats.rounds >= KILLS, `the probe loop ran throughout (${stats.rounds} rounds for ${KILLS} kills)`);
  } finally {
    shim.clear();
    await loop.stop();
  }
});

test('an agent restarted with nothing changed makes zero kernel changes and fails zero probes', async (t) => {
  const nodes = NODES.map((n) => n.name);
  await waitConverged(sandbox.kc, nodes);
  const names = [...sandbox.pods.keys()];
  const pairs = names.flatMap((a) => names.filter((b) => b !== a).map((b) => [a, b, 80] as [string, string, number]));
  pairs.push([`${NS}/client`, `${NS}/web`, 81], [`${NS}/other`, `${NS}/web`, 81]);
  const loop = new ProbeLoop(sandbox.topology, await oracleFlows(sandbox.kc, sandbox, pairs), 500).start();
  const netns = sandbox.topology.nodeNetns('fa1');
  const shim = shims.get('fa1')!;
  const before = await kernelSnapshot(netns);
  const mark = Date.now();
  const restartMs: number[] = [];
  try {
    await sleep(500);
    for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
      const old = agents.get('fa1')!;
      if (signal === 'SIGTERM') assert.equal(await old.stop(), 0, 'a graceful stop exits 0');
      else await old.kill('SIGKILL');
      const started = performance.now();
      const fresh = await startAgent('fa1');
      await waitFor('the restarted agent to finish its first sync', async () => metricValue(await fresh.metrics('/node-metrics'), 'fencer_agent_applies_total', { result: 'noop' }) >= 1, 20_000, 50)
        .catch((e: Error) => assert.fail(`${e.message}\n${tail(fresh)}`));
      restartMs.push(performance.now() - started);
      await sleep(500);
    }
  } finally {
    await loop.stop();
  }
  const afterSnap = await kernelSnapshot(netns);
  const writes = shim.writes(mark);
  const stats = loop.stats;
  t.diagnostic(`restart → first sync: ${restartMs.map((m) => Math.round(m)).join(', ')} ms; kernel-changing calls: ${writes.length}; probes ${stats.sent} sent, ${stats.failed} failed`);
  recordRow({
    id: '02-agent-restart-noop',
    fault: 'agent restarted with nothing changed (SIGTERM, then SIGKILL)',
    injection: 'stop or kill the agent process, start it again; shim counts every kernel-changing call',
    observed: `${writes.length} kernel-changing tool calls; iptables-save and ipset save identical before and after; first sync ${restartMs.map((m) => Math.round(m)).join(' / ')} ms after start (process start-up included)`,
    convergeMs: Math.round(Math.max(...restartMs)),
    probes: { failed: stats.failed, sent: stats.sent },
    statesLost: 0,
    test: 'test/integration/fault-agent.test.ts',
  });
  assert.deepEqual(writes.map((c) => `${c.tool} ${c.args.join(' ')}`), [], 'no tool call that changes the kernel');
  assert.equal(afterSnap.rules, before.rules);
  assert.equal(afterSnap.sets, before.sets);
  assert.equal(stats.failed, 0, JSON.stringify(stats.failures));
});
