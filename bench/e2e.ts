// End to end on the sandbox: from a change accepted by the apiserver to every agent enforcing it,
// and to a probe seeing the new verdict; plus how long a new pod selected by a deny policy answers.
import type { V1NetworkPolicy } from '@kubernetes/client-node';
import { parseScenario } from '../matrix/scenario.ts';
import { nodeCIDR, ScenarioWorld } from '../matrix/world.ts';
import { PolicyCompiler } from '../operator/compile/compiler.ts';
import type { CompiledPolicySetSpec } from '../crds/types.ts';
import { silentLogger } from '../runtime/log.ts';
import { resetCluster } from '../sandbox/reset.ts';
import { Sandbox } from '../sandbox/sandbox.ts';
import { startControlPlane } from '../localcluster/control-plane.ts';
import { ContinuousProbe } from '../netns/continuous-probe.ts';
import { stat, type Stat } from './stats.ts';

export interface E2eResult { nodes: number; pods: number; iterations: number; policyEnforcedMs: Stat; policyEnforcedFromAnswerMs: Stat; labelEnforcedMs: Stat; labelEnforcedFromAnswerMs: Stat; probeSeesMs: Stat; labelProbeSeesMs: Stat; newPodReachableMs: Stat }

const NAMESPACES = ['a', 'b', 'c', 'd'];

function denyPolicy(ns: string, name: string, allowFrom?: string): V1NetworkPolicy {
  return {
    apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { namespace: ns, name },
    spec: { podSelector: { matchLabels: { app: 'web' } }, ingress: allowFrom ? [{ from: [{ podSelector: { matchLabels: { role: allowFrom } } }] } as never] : [] },
  };
}

export async function benchE2e(iterations = 40): Promise<E2eResult> {
  const nodes = ['node-1', 'node-2', 'node-3', 'node-4'];
  const pods = NAMESPACES.flatMap((ns) => Array.from({ length: 15 }, (_, i) => ({ namespace: ns, name: `p${i}`, labels: { app: i < 5 ? 'web' : 'api', role: 'client' }, ports: [{ port: 80, protocol: 'TCP' }] })));
  const scenario = parseScenario('bench', { name: 'bench', cluster: { nodes, namespaces: Object.fromEntries(NAMESPACES.map((n) => [n, { ns: n }])), pods } });
  const world = new ScenarioWorld(scenario);
  const cp = await startControlPlane();
  await resetCluster(cp.kubeConfig(), scenario.namespaces);
  const sandbox = await Sandbox.start({ cluster: cp, nodes: nodes.map((name, i) => ({ name, podCIDR: nodeCIDR(i) })), prefix: 'fbe', log: silentLogger(), driftSeconds: 0, agents: 'processes' });
  let prober: ContinuousProbe | undefined;
  const expected = () => PolicyCompiler.compile(world.snapshot());
  try {
    for (const p of world.livePods()) await sandbox.addPod({ namespace: p.spec.namespace, name: p.spec.name, node: p.spec.node, ip: p.ip, labels: p.spec.labels, ports: p.spec.ports });
    await sandbox.waitEnforced(expected());
    const policyMs: number[] = [];
    const labelMs: number[] = [];
    const probeMs: number[] = [];
    const policyAcceptedMs: number[] = [];
    const labelAcceptedMs: number[] = [];
    const labelProbeMs: number[] = [];
    const target = [...sandbox.pods.values()].find((p) => p.pod.namespace === 'a' && p.pod.labels.app === 'web')!;
    const client = [...sandbox.pods.values()].find((p) => p.pod.namespace === 'a' && p.pod.labels.app === 'api')!;
    prober = new ContinuousProbe(client.handle.netns, { ip: target.pod.ip, port: 80 }, 5, 200);
    for (let i = 0; i < iterations; i++) {
      // A policy change that opens the target to the client: enforced, then seen by a probe.
      const deny = denyPolicy('a', 'bench', i % 2 === 0 ? undefined : 'client');
      world.applyStep({ delete: [], deletePods: [], createPods: [], labels: [], apply: [deny as never] }, 'bench');
      // From the write itself: the read applyPolicy does first is not part of the change.
      const t0 = await sandbox.applyPolicy(deny);
      const accepted = performance.now();
      await sandbox.waitEnforced(expected());
      policyMs.push(performance.now() - t0);
      policyAcceptedMs.push(performance.now() - accepted);
      // Odd steps open the target to the client (even ones keep it closed): timed to the start of the
      // first connection attempt that saw the new verdict (an attempt starts every 5 ms).
      if (i % 2 === 1) probeMs.push(await prober.seen(performance.timeOrigin + t0, true));
      // A pod label change that moves the client in and out of the allowed peers.
      const role = i % 2 === 0 ? 'client' : 'other';
      world.applyStep({ delete: [], deletePods: [], createPods: [], labels: [{ kind: 'Pod', namespace: 'a', name: client.pod.name, set: { role }, remove: [] }], apply: [] }, 'bench');
      const t1 = performance.now();
      await sandbox.kubelet.labelPod('a', client.pod.name, { role });
      const labelAccepted = performance.now();
      client.pod.labels.role = role;
      await sandbox.waitEnforced(expected());
      // Only odd steps change what a node enforces (the client leaves the allowed peers and the target
      // closes to it); under the deny-all policy of even steps the label matters to no rule.
      if (i % 2 === 1) {
        labelMs.push(performance.now() - t1);
        labelAcceptedMs.push(performance.now() - labelAccepted);
        labelProbeMs.push(await prober.seen(performance.timeOrigin + t1, false));
      }
      prober.forget(performance.timeOrigin + t1);
    }
    const newPod = await newPodWindows(sandbox, world, expected, client.handle);
    return { nodes: nodes.length, pods: pods.length, iterations, policyEnforcedMs: stat(policyMs), policyEnforcedFromAnswerMs: stat(policyAcceptedMs), labelEnforcedMs: stat(labelMs), labelEnforcedFromAnswerMs: stat(labelAcceptedMs), probeSeesMs: stat(probeMs), labelProbeSeesMs: stat(labelProbeMs), newPodReachableMs: stat(newPod) };
  } finally {
    prober?.stop();
    await sandbox.stop();
    await cp.stop();
  }
}

/** A new pod matching a deny-all policy: how long it answers before its node enforces the policy for it. */
async function newPodWindows(sandbox: Sandbox, world: ScenarioWorld, expected: () => Map<string, CompiledPolicySetSpec>, client: import('../netns/topology.ts').PodHandle): Promise<number[]> {
  const deny = denyPolicy('b', 'deny-new');
  world.applyStep({ delete: [], deletePods: [], createPods: [], labels: [], apply: [deny as never] }, 'bench');
  await sandbox.applyPolicy(deny);
  await sandbox.waitEnforced(expected());
  const windows: number[] = [];
  for (let i = 0; i < 5; i++) {
    const spec = { namespace: 'b', name: `new${i}`, labels: { app: 'web' }, node: 'node-2', ports: [{ name: 'http', port: 80, protocol: 'TCP' as const }] };
    world.applyStep({ delete: [], deletePods: [], labels: [], apply: [], createPods: [spec] }, 'bench');
    const info = world.livePods().find((p) => p.key === `b/new${i}`)!;
    const started = performance.now();
    const adding = sandbox.addPod({ ...spec, ip: info.ip });
    let lastOpen = started;
    let enforced = false;
    const waiting = sandbox.waitEnforced(expected()).then(() => { enforced = true; });
    while (!enforced) {
      if ((await sandbox.topology.probe(client, [{ ip: info.ip, protocol: 'TCP', port: 80 }], 100).catch(() => [false]))[0]) lastOpen = performance.now();
    }
    await adding;
    await waiting;
    windows.push(lastOpen - started);
  }
  return windows;
}
