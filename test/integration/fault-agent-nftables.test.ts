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
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { V1NetworkPolicy } from '@kubernetes/client-node';
import { NftablesDataplane } from '../../agent/dataplane/nftables/dataplane.ts';
import { ExecRunner } from '../../agent/dataplane/linux/runner.ts';
import { silentLogger } from '../../runtime/log.ts';
import { resetCluster } from '../../sandbox/reset.ts';
import { Sandbox } from '../../sandbox/sandbox.ts';
import { applyPolicy, enforcedSpec, oracleFlows, pod, sleep, waitConverged, waitFor } from '../faults/harness.ts';
import { inNetns } from '../faults/kernel.ts';
import { ProbeLoop, type LoopFlow } from '../faults/probe-loop.ts';
import { metricValue, spawnAgent, type FencerProcess } from '../faults/processes.ts';
import { recordRow } from '../faults/report.ts';
import { createShim, type Shim } from '../faults/shim.ts';
import { testCluster } from './env.ts';

const NS = 'fault-agent-nft';
const NODES = [{ name: 'fn1', podCIDR: '10.244.1.0/24' }, { name: 'fn2', podCIDR: '10.244.2.0/24' }];
const KILLS = Number(process.env.FENCER_FAULT_KILLS ?? 4);

let sandbox: Sandbox;
let logs: string;
const shims = new Map<string, Shim>();
const agents = new Map<string, FencerProcess>();
let generation = 0;

/** Every generation allows client → web:80 and never other → web; ports and the ipBlock change each time. */
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
    logFile: join(logs, `agent-${node}.log`), path: shims.get(node)!.path(), dataplane: 'nftables',
  });
  agents.set(node, p);
  return p;
}

async function nextGeneration(): Promise<void> {
  generation++;
  await applyPolicy(sandbox.kc, webPolicy(generation));
  await sandbox.kubelet.labelPod(NS, 'guest', { role: generation % 2 ? 'client' : 'visitor' });
}

/** What the node's table lacks or holds beyond `node`'s enforced spec; empty when exact. */
async function tableProblems(node: string): Promise<string[]> {
  const dp = new NftablesDataplane({ runner: new ExecRunner(['ip', 'netns', 'exec', sandbox.topology.nodeNetns(node)]) });
  return dp.drift(await enforcedSpec(sandbox.kc, node));
}

const tail = (p: FencerProcess | undefined) => (p ? p.log().trim().split('\n').slice(-15).join('\n') : '');

before(async () => {
  const cluster = testCluster();
  logs = mkdtempSync(join(tmpdir(), 'fencer-fault-agent-nft-'));
  await resetCluster(cluster.kubeConfig(), new Map([[NS, {}]]));
  sandbox = await Sandbox.start({ cluster, nodes: NODES, prefix: 'fan', log: silentLogger(), agents: 'none' });
  for (const n of NODES) shims.set(n.name, createShim());
  await sandbox.addPod(pod(NS, 'web', 'fn1', '10.244.1.10', { app: 'web' }, [80, 81]));
  await sandbox.addPod(pod(NS, 'other', 'fn1', '10.244.1.11', { role: 'other' }));
  await sandbox.addPod(pod(NS, 'client', 'fn2', '10.244.2.10', { role: 'client' }));
  await sandbox.addPod(pod(NS, 'guest', 'fn2', '10.244.2.11', { role: 'visitor' }));
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

test('nftables: an agent killed while nft -f is held converges to the latest generation, leaves exactly its table and never opens a denied flow', async (t) => {
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
  ];
  const loop = new ProbeLoop(sandbox.topology, flows, 500).start();
  const shim = shims.get('fn1')!;
  let lastRestart = 0;
  try {
    for (let i = 0; i < KILLS; i++) {
      shim.set('nft', { action: 'delay', ms: 1500, match: '-f' });
      const since = Date.now();
      await nextGeneration();
      await waitFor('the agent to start an nft -f', async () => shim.calls().some((c) => c.phase === 'start' && c.at >= since && c.tool === 'nft' && c.args[0] === '-f'), 15_000, 20)
        .catch((e: Error) => assert.fail(`${e.message}\n${tail(agents.get('fn1'))}`));
      await sleep(Math.floor(Math.random() * 300));
      await agents.get('fn1')!.kill('SIGKILL');
      shim.clear();
      await nextGeneration();
      await sleep(300);
      lastRestart = performance.now();
      await startAgent('fn1');
    }
    await waitConverged(sandbox.kc, NODES.map((n) => n.name), 60_000);
    const sinceRestart = performance.now() - lastRestart;
    const stats = await loop.stop();
    const problems = [...await tableProblems('fn1'), ...await tableProblems('fn2')];
    t.diagnostic(`${KILLS} kills; converged ${Math.round(sinceRestart)} ms after the last restart; probes ${stats.sent} sent, ${stats.opened} opened, ${stats.closed} closed`);
    recordRow({
      id: '01b-agent-sigkill-nftables',
      fault: `agent on the nftables dataplane SIGKILLed while its nft -f is held, ${KILLS} times, while the policy and a pod's labels change`,
      injection: 'process group SIGKILL (its tool shell and nft session with it) while a shimmed nft -f waits 1.5 s; one more change while it is down; restart',
      observed: `converged to the latest generation (${generation}) on every node; each table exactly its spec (read back and planned: nothing to change); no flow denied by every generation seen open`,
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
  const nodes = NODES.map((n) => n.name);
  await waitConverged(sandbox.kc, nodes);
  const names = [...sandbox.pods.keys()];
  const pairs = names.flatMap((a) => names.filter((b) => b !== a).map((b) => [a, b, 80] as [string, string, number]));
  const loop = new ProbeLoop(sandbox.topology, await oracleFlows(sandbox.kc, sandbox, pairs), 500).start();
  const netns = sandbox.topology.nodeNetns('fn1');
  const shim = shims.get('fn1')!;
  const before = await inNetns(netns, ['nft', 'list', 'table', 'inet', 'fencer']);
  const mark = Date.now();
  const restartMs: number[] = [];
  try {
    await sleep(500);
    for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
      const old = agents.get('fn1')!;
      if (signal === 'SIGTERM') assert.equal(await old.stop(), 0, 'a graceful stop exits 0');
      else await old.kill('SIGKILL');
      const started = performance.now();
      const fresh = await startAgent('fn1');
      await waitFor('the restarted agent to finish its first sync', async () => metricValue(await fresh.metrics('/node-metrics'), 'fencer_agent_applies_total', { result: 'noop' }) >= 1, 20_000, 50)
        .catch((e: Error) => assert.fail(`${e.message}\n${tail(fresh)}`));
      restartMs.push(performance.now() - started);
      await sleep(500);
    }
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
