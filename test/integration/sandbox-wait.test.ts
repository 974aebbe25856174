// The sandbox's waitEnforced after a change that moves members of a shared set only: no node's
// CompiledPolicySet changes (so no status moves), yet the wait returns only once every agent holds
// the new members, and a probe right after it sees the new verdict.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { enforcedDigest } from '../../crds/enforced-digest.ts';
import { parseScenario } from '../../matrix/scenario.ts';
import { nodeCIDR, ScenarioWorld } from '../../matrix/world.ts';
import { PolicyCompiler } from '../../operator/compile/compiler.ts';
import { silentLogger } from '../../runtime/log.ts';
import { resetCluster } from '../../sandbox/reset.ts';
import { Sandbox } from '../../sandbox/sandbox.ts';
import { testCluster } from './env.ts';

test('waitEnforced waits for the members of shared sets, not only for status', async () => {
  const cluster = testCluster();
  const nodes = ['node-1', 'node-2'];
  const scenario = parseScenario('wait', {
    name: 'wait',
    cluster: {
      nodes,
      namespaces: { x: { ns: 'x' } },
      pods: [
        { namespace: 'x', name: 'web', node: 'node-1', labels: { app: 'web' }, ports: [{ port: 80, protocol: 'TCP' }] },
        { namespace: 'x', name: 'client', node: 'node-2', labels: { role: 'none' }, ports: [{ port: 80, protocol: 'TCP' }] },
      ],
    },
  });
  const world = new ScenarioWorld(scenario);
  await resetCluster(cluster.kubeConfig(), scenario.namespaces);
  const sandbox = await Sandbox.start({ cluster, nodes: nodes.map((name, i) => ({ name, podCIDR: nodeCIDR(i) })), prefix: 'fwait', log: silentLogger(), driftSeconds: 0 });
  try {
    for (const p of world.livePods()) await sandbox.addPod({ namespace: p.spec.namespace, name: p.spec.name, node: p.spec.node, ip: p.ip, labels: p.spec.labels, ports: p.spec.ports });
    const policy = { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { namespace: 'x', name: 'web' }, spec: { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ from: [{ podSelector: { matchLabels: { role: 'client' } } }] }] } };
    world.applyStep({ delete: [], deletePods: [], createPods: [], labels: [], apply: [policy as never] }, 'policy');
    await sandbox.applyPolicy(policy as never);
    await sandbox.waitEnforced(PolicyCompiler.compile(world.snapshot()));
    const web = sandbox.pods.get('x/web')!;
    const client = sandbox.pods.get('x/client')!;
    assert.deepEqual(await sandbox.topology.probe(client.handle, [{ ip: web.pod.ip, protocol: 'TCP', port: 80 }], 800), [false]);

    const before = PolicyCompiler.compile(world.snapshot());
    world.applyStep({ delete: [], deletePods: [], createPods: [], apply: [], labels: [{ kind: 'Pod', namespace: 'x', name: 'client', set: { role: 'client' }, remove: [] }] }, 'relabel');
    const after = PolicyCompiler.compile(world.snapshot());
    for (const node of nodes) assert.equal(after.get(node)!.contentHash, before.get(node)!.contentHash, `${node}: a member change only`);
    await sandbox.kubelet.labelPod('x', 'client', { role: 'client' });
    await sandbox.waitEnforced(after);
    for (const node of nodes) assert.equal(enforcedDigest(sandbox.agents.get(node)!.agent.enforcedSpec()!), enforcedDigest(after.get(node)!), node);
    assert.deepEqual(await sandbox.topology.probe(client.handle, [{ ip: web.pod.ip, protocol: 'TCP', port: 80 }], 800), [true]);
  } finally {
    await sandbox.stop();
  }
});
