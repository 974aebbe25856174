// Faults of the agent process on the nftables dataplane, with real packets (the iptables
// dataplane's are in fault-agent.test.ts): agents run as `fencer agent --dataplane nftables`
// processes behind the kernel-tool shim, so they can be killed while an `nft -f` is held and their
// kernel calls counted.
//  1. SIGKILL in the middle of applies, repeatedly, while policies and pods change: the node
//     converges to the latest generation, its table holds exactly that spec, and a continuous probe
//     loop never sees a flow open that every generation denies.
//  2. A restart with nothing changed runs no nft command that writes, and fails zero probes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { NftablesDataplane } from '../../agent/dataplane/nftables/dataplane.ts';
import { ExecRunner } from '../../agent/dataplane/linux/runner.ts';
import { enforcedSpec, sleep, waitConverged, waitFor } from '../faults/harness.ts';
import { AgentBed } from '../faults/agent-bed.ts';
import { inNetns } from '../faults/kernel.ts';
import { ProbeLoop } from '../faults/probe-loop.ts';
import { recordRow } from '../faults/report.ts';
import { testCluster } from './env.ts';

const NS = 'fault-agent-nft';
const NODES: [string, string] = ['fn1', 'fn2'];
const KILLS = Number(process.env.FENCER_FAULT_KILLS ?? 4);

let bed: AgentBed;

/** What the node's table lacks or holds beyond `node`'s enforced spec; empty when exact. */
async function tableProblems(node: string): Promise<string[]> {
  const dp = new NftablesDataplane({ runner: new ExecRunner(['ip', 'netns', 'exec', bed.sandbox.topology.nodeNetns(node)]) });
  return dp.drift(await enforcedSpec(bed.sandbox.kc, node));
}

before(async () => {
  bed = await AgentBed.start({ cluster: testCluster(), namespace: NS, nodes: NODES, prefix: 'fan', dataplane: 'nftables' });
});

after(async () => {
  await bed?.stop();
});

test('nftables: an agent killed while nft -f is held converges to the latest generation, leaves exactly its table and never opens a denied flow', async (t) => {
  const { sandbox } = bed;
  const loop = new ProbeLoop(sandbox.topology, bed.flows(), 500).start();
  const shim = bed.shims.get('fn1')!;
  let lastRestart = 0;
  try {
    for (let i = 0; i < KILLS; i++) {
      shim.set('nft', { action: 'delay', ms: 1500, match: '-f' });
      const since = Date.now();
      await bed.nextGeneration();
      await waitFor('the agent to start an nft -f', async () => shim.calls().some((c) => c.phase === 'start' && c.at >= since && c.tool === 'nft' && c.args[0] === '-f'), 15_000, 20)
        .catch((e: Error) => assert.fail(`${e.message}\n${bed.tail('fn1')}`));
      await sleep(Math.floor(Math.random() * 300));
      await bed.agents.get('fn1')!.kill('SIGKILL');
      shim.clear();
      await bed.nextGeneration();
      await sleep(300);
      lastRestart = performance.now();
      await bed.startAgent('fn1');
    }
    await waitConverged(sandbox.kc, NODES, 60_000);
    const sinceRestart = performance.now() - lastRestart;
    const stats = await loop.stop();
    const problems = [...await tableProblems('fn1'), ...await tableProblems('fn2')];
    t.diagnostic(`${KILLS} kills; converged ${Math.round(sinceRestart)} ms after the last restart; probes ${stats.sent} sent, ${stats.opened} opened, ${stats.closed} closed`);
    recordRow({
      id: '01b-agent-sigkill-nftables',
      fault: `agent on the nftables dataplane SIGKILLed while its nft -f is held, ${KILLS} times, while the policy and a pod's labels change`,
      injection: 'process group SIGKILL (its tool shell and nft session with it) while a shimmed nft -f waits 1.5 s; one more change while it is down; restart',
      observed: `converged to the latest generation (${bed.generation}) on every node; each table exactly its spec (read back and planned: nothing to change); no flow denied by every generation seen open`,
      convergeMs: Math.round(sinceRestart),
      probes: { failed: stats.failed, sent: stats.sent },
      statesLost: problems.length,
      test: 'test/integration/fault-agent-nftables.test.ts',
    });
    assert.deepEqual(problems, [], 'each node\'s table holds exactly its latest spec');
    assert.equal(stats.opened, 0, `a flow every generation denies was seen open: ${JSON.stringify(stats.failures)}`);
    assert.equal(stats.closed, 0, `a flow every generation allows was seen closed: ${JSON.stringify(stats.failures)}`);
  } finally {
    shim.clear();
    await loop.stop();
  }
});

test('nftables: an agent restarted with nothing changed writes nothing and fails zero probes', async (t) => {
  const { sandbox } = bed;
  await waitConverged(sandbox.kc, NODES);
  const loop = new ProbeLoop(sandbox.topology, await bed.restartFlows(), 500).start();
  const netns = sandbox.topology.nodeNetns('fn1');
  const shim = bed.shims.get('fn1')!;
  const before = await inNetns(netns, ['nft', 'list', 'table', 'inet', 'fencer']);
  const mark = Date.now();
  let restartMs: number[];
  try {
    restartMs = await bed.restartTwice('fn1');
  } finally {
    await loop.stop();
  }
  const writes = shim.writes(mark).map((c) => `${c.tool} ${c.args.join(' ')}`);
  t.diagnostic(`restart → first sync: ${restartMs.map((m) => Math.round(m)).join(', ')} ms; kernel-changing calls: ${writes.length}; probes ${loop.stats.sent} sent, ${loop.stats.failed} failed`);
  recordRow({
    id: '02b-agent-restart-noop-nftables',
    fault: 'agent on the nftables dataplane restarted with nothing changed (SIGTERM, then SIGKILL)',
    injection: 'stop or kill the agent process, start it again; the shim counts every nft call that could write',
    observed: `${writes.length} writing nft calls; the table listed identically before and after; first sync ${restartMs.map((m) => Math.round(m)).join(' / ')} ms after start (process start-up included)`,
    convergeMs: Math.round(Math.max(...restartMs)),
    probes: { failed: loop.stats.failed, sent: loop.stats.sent },
    statesLost: 0,
    test: 'test/integration/fault-agent-nftables.test.ts',
  });
  assert.deepEqual(writes, [], 'no nft call that could write');
  assert.equal(await inNetns(netns, ['nft', 'list', 'table', 'inet', 'fencer']), before);
  assert.equal(loop.stats.failed, 0, JSON.stringify(loop.stats.failures));
});
