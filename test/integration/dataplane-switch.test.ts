// A node's agent moving between the iptables and nftables dataplanes, with real packets: each
// dataplane enforces the same policy, the new one removes what the other left once it enforces,
// `auto` stays on the nftables table an earlier agent left, and `--cleanup` removes both.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { V1NetworkPolicy } from '@kubernetes/client-node';
import { pickDataplane, startAgent, type RunningAgent } from '../../cli/agent.ts';
import type { LinuxBackend } from '../../agent/dataplane/choose.ts';
import { silentLogger } from '../../runtime/log.ts';
import { resetCluster } from '../../sandbox/reset.ts';
import { Sandbox } from '../../sandbox/sandbox.ts';
import { createNftablesDataplane } from '../../agent/dataplane/nftables/dataplane.ts';
import { applyPolicy, enforcedSpec, pod, waitConverged, waitFor } from '../faults/harness.ts';
import { testCluster } from './env.ts';

const NS = 'dataplane-switch';
const NODE = 'dsw1';
let sandbox: Sandbox;
let agent: RunningAgent | undefined;

const policy: V1NetworkPolicy = {
  apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { namespace: NS, name: 'web' },
  spec: { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ from: [{ podSelector: { matchLabels: { role: 'client' } } }], ports: [{ protocol: 'TCP', port: 80 }] } as never] },
};

interface NodeKernel { iptablesChains: number; forwardJump: boolean; ipsets: number; nftTable: boolean }

async function kernel(): Promise<NodeKernel> {
  const save = await sandbox.topology.nodeExec(NODE, ['iptables-save', '-t', 'filter']);
  const sets = await sandbox.topology.nodeExec(NODE, ['ipset', 'list', '-n']);
  const nft = await sandbox.topology.nodeExec(NODE, ['nft', 'list', 'table', 'inet', 'fencer'], { reject: false });
  return {
    iptablesChains: save.stdout.split('\n').filter((l) => /^:FENCER-/.test(l)).length,
    forwardJump: /-A FORWARD .*-j FENCER-FORWARD/.test(save.stdout),
    ipsets: sets.stdout.split('\n').filter((l) => l.startsWith('FENCER-')).length,
    nftTable: nft.exitCode === 0,
  };
}

const only = (backend: LinuxBackend) => (k: NodeKernel) => backend === 'nftables'
  ? k.nftTable && k.iptablesChains === 0 && !k.forwardJump && k.ipsets === 0
  : !k.nftTable && k.iptablesChains > 0 && k.forwardJump && k.ipsets > 0;

async function runAgent(dataplane: 'auto' | LinuxBackend): Promise<RunningAgent> {
  await agent?.stop();
  agent = await startAgent({
    nodeName: NODE, kubeconfig: testCluster().kubeconfigPath, netns: sandbox.topology.nodeNetns(NODE), metricsPort: 0, metricsHost: '127.0.0.1',
    driftSeconds: 0, hookPosition: 'first', iptablesMode: 'auto', dataplane, log: silentLogger(),
  });
  return agent;
}

async function chosen(a: RunningAgent): Promise<string | undefined> {
  const text = await (await fetch(`http://127.0.0.1:${a.metricsPort}/node-metrics`)).text();
  return /^fencer_agent_dataplane\{dataplane="(\w+)"\} 1$/m.exec(text)?.[1];
}

async function flows(): Promise<{ client: boolean; other: boolean }> {
  const web = sandbox.pods.get(`${NS}/web`)!.handle;
  const target = [{ ip: web.ip, protocol: 'TCP' as const, port: 80 }];
  const [[client], [other]] = await Promise.all([
    sandbox.topology.probe(sandbox.pods.get(`${NS}/client`)!.handle, target),
    sandbox.topology.probe(sandbox.pods.get(`${NS}/other`)!.handle, target),
  ]);
  return { client, other };
}

before(async () => {
  const cluster = testCluster();
  await resetCluster(cluster.kubeConfig(), new Map([[NS, {}]]));
  sandbox = await Sandbox.start({ cluster, nodes: [{ name: NODE, podCIDR: '10.244.7.0/24' }], prefix: 'fdsw', log: silentLogger(), agents: 'none' });
  await sandbox.addPod(pod(NS, 'web', NODE, '10.244.7.10', { app: 'web' }));
  await sandbox.addPod(pod(NS, 'client', NODE, '10.244.7.11', { role: 'client' }));
  await sandbox.addPod(pod(NS, 'other', NODE, '10.244.7.12', { role: 'other' }));
  await applyPolicy(sandbox.kc, policy);
});

after(async () => {
  await agent?.stop();
  await sandbox?.stop();
  await sandbox?.kubelet.deleteNamespace(NS).catch(() => undefined);
  await sandbox?.kubelet.deleteNode(NODE).catch(() => undefined);
});

test('iptables → nftables → auto → iptables: each enforces the policy, the other\'s state goes once the new one applied', async () => {
  await runAgent('iptables');
  await waitConverged(sandbox.kc, [NODE]);
  assert.ok(only('iptables')(await kernel()), JSON.stringify(await kernel()));
  assert.deepEqual(await flows(), { client: true, other: false });

  for (const [flag, backend] of [['nftables', 'nftables'], ['auto', 'nftables'], ['iptables', 'iptables']] as const) {
    const a = await runAgent(flag);
    assert.equal(await chosen(a), backend, `--dataplane ${flag}`);
    await waitFor(`only the ${backend} dataplane's state on the node after --dataplane ${flag}`, async () => only(backend)(await kernel()), 15_000, 50)
      .catch(async (e: Error) => assert.fail(`${e.message}: ${JSON.stringify(await kernel())}`));
    assert.deepEqual(await flows(), { client: true, other: false }, `--dataplane ${flag}`);
  }
});

test('fencer agent --cleanup removes both dataplanes\' state, and nothing else', async () => {
  await agent?.stop();
  agent = undefined;
  // Both present, as a node stopped halfway through a switch would be.
  const nft = createNftablesDataplane({ netns: sandbox.topology.nodeNetns(NODE) });
  await nft.apply(await enforcedSpec(sandbox.kc, NODE));
  await nft.close();
  await sandbox.topology.nodeExec(NODE, ['nft', 'add', 'table', 'inet', 'someone-else']);
  assert.ok(only('iptables')({ ...(await kernel()), nftTable: false }) && (await kernel()).nftTable, 'both dataplanes hold state');
  const both = await pickDataplane({ netns: sandbox.topology.nodeNetns(NODE), hookPosition: 'first', iptablesMode: 'auto', dataplane: 'auto' });
  await both.dataplane.cleanup();
  await both.dataplane.close?.();
  assert.deepEqual(await kernel(), { iptablesChains: 0, forwardJump: false, ipsets: 0, nftTable: false });
  assert.equal((await sandbox.topology.nodeExec(NODE, ['nft', 'list', 'table', 'inet', 'someone-else'], { reject: false })).exitCode, 0, 'another table stays');
  assert.deepEqual(await flows(), { client: true, other: true }, 'nothing enforced any more');
});
