// Faults of the agent process, on the sandbox with real packets: agents run as `fencer agent --netns`
// processes behind a kernel-tool shim (test/faults/shim.ts) so they can be killed at a chosen step of
// an apply and their kernel calls counted.
//  1. SIGKILL in the middle of applies, repeatedly, while policies and pods change: after restart
//     the node converges to the latest generation, no temporary sets or stale chains remain, and a
//     continuous probe loop never sees a flow open that every generation denies.
//  2. A restart with nothing changed makes zero kernel changes and fails zero probes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { enforcedSpec, sleep, waitConverged, waitFor } from '../faults/harness.ts';
import { AgentBed } from '../faults/agent-bed.ts';
import { kernelProblems, kernelSnapshot } from '../faults/kernel.ts';
import { ProbeLoop } from '../faults/probe-loop.ts';
import { recordRow } from '../faults/report.ts';
import type { ShimmedTool } from '../faults/shim.ts';
import { testCluster } from './env.ts';

const NS = 'fault-agent';
const NODES: [string, string] = ['fa1', 'fa2'];
const KILLS = Number(process.env.FENCER_FAULT_KILLS ?? 5);

let bed: AgentBed;

before(async () => {
  bed = await AgentBed.start({ cluster: testCluster(), namespace: NS, nodes: NODES, prefix: 'fak', dataplane: 'iptables' });
});

after(async () => {
  await bed?.stop();
});

interface Stage { tools: ShimmedTool[]; match: string; what: string }
const STAGES: Stage[] = [
  { tools: ['iptables-nft-restore', 'iptables-legacy-restore'], match: '*', what: 'new sets built, iptables-restore not committed' },
  { tools: ['ipset'], match: 'restore', what: 'ipset restore not run yet' },
  { tools: ['ipset'], match: 'restore -exist', what: 'rules switched, old sets not destroyed yet' },
];

test('an agent killed in the middle of applies converges to the latest generation, leaves nothing behind and never opens a denied flow', async (t) => {
  const { sandbox } = bed;
  const loop = new ProbeLoop(sandbox.topology, bed.flows(), 500).start();
  const shim = bed.shims.get('fa1')!;
  const netns = sandbox.topology.nodeNetns('fa1');
  const kills: string[] = [];
  let leftoversSeen = 0;
  let lastRestart = 0;
  try {
    for (let i = 0; i < KILLS; i++) {
      const stage = STAGES[i % STAGES.length];
      for (const tool of stage.tools) shim.set(tool, { action: 'delay', ms: 1500, match: stage.match });
      const since = Date.now();
      await bed.nextGeneration();
      await waitFor(`the agent to reach "${stage.what}"`, async () => shim.calls().some((c) => c.phase === 'start' && c.at >= since
        && stage.tools.includes(c.tool as ShimmedTool) && (stage.match === '*' || c.args[0] === stage.match || c.args.join(' ') === stage.match)), 15_000, 20)
        .catch((e: Error) => assert.fail(`${e.message}\n${bed.tail('fa1')}\n${shim.calls().slice(-25).map((c) => `${c.at} ${c.phase} ${c.tool} ${c.args.join(' ')}`).join('\n')}`));
      await sleep(Math.floor(Math.random() * 300));
      const code = await bed.agents.get('fa1')!.kill('SIGKILL');
      kills.push(`${stage.what} (exit ${code})`);
      shim.clear();
      const left = await kernelProblems(netns, await enforcedSpec(sandbox.kc, 'fa1')).catch(() => []);
      if (left.some((p) => /no rule references/.test(p))) leftoversSeen++;
      // Changes keep coming while the agent is down.
      await bed.nextGeneration();
      await sleep(300);
      lastRestart = performance.now();
      await bed.startAgent('fa1');
    }
    const convergeMs = await waitConverged(sandbox.kc, NODES, 60_000);
    const sinceRestart = performance.now() - lastRestart;
    const stats = await loop.stop();
    const problems = await kernelProblems(netns, await enforcedSpec(sandbox.kc, 'fa1'), 3000);
    const problems2 = await kernelProblems(sandbox.topology.nodeNetns('fa2'), await enforcedSpec(sandbox.kc, 'fa2'), 3000);
    t.diagnostic(`kills: ${kills.join('; ')}; leftovers seen right after a kill: ${leftoversSeen}; converged ${Math.round(sinceRestart)} ms after the last restart (wait ${Math.round(convergeMs)} ms); probes ${stats.sent} sent, ${stats.opened} opened, ${stats.closed} closed, ${stats.errors} errors; seen ${JSON.stringify(stats.seen)}`);
    recordRow({
      id: '01-agent-sigkill',
      fault: `agent SIGKILLed in the middle of an apply, ${KILLS} times, while the policy and a pod's labels change`,
      injection: 'process group SIGKILL while a shimmed ipset/iptables-restore/ipset destroy is held for 1.5 s (rotating the step); one more change while it is down; restart',
      observed: `converged to the latest generation (${bed.generation}) on every node; ${leftoversSeen} of ${KILLS} kills left unreferenced sets, all removed by the next apply; no stale chain or set; no flow denied by every generation seen open`,
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
  const { sandbox } = bed;
  await waitConverged(sandbox.kc, NODES);
  const loop = new ProbeLoop(sandbox.topology, await bed.restartFlows(), 500).start();
  const netns = sandbox.topology.nodeNetns('fa1');
  const shim = bed.shims.get('fa1')!;
  const before = await kernelSnapshot(netns);
  const mark = Date.now();
  let restartMs: number[];
  try {
    restartMs = await bed.restartTwice('fa1');
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
