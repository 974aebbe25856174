// Runs a scenario file on the sandbox with real packets: each step goes through the apiserver, the
// runner waits until every agent enforces what the step compiles to, then probes every pod pair.
// SCTP probes are judged on the compiled rules (no SCTP sockets in this kernel).
import { CoreV1Api, type V1Namespace, type V1NetworkPolicy, type V1Pod } from '@kubernetes/client-node';
import type { ClusterChange } from '../operator/compile/compiler.ts';
import { PolicyCompiler } from '../operator/compile/compiler.ts';
import { oracleAllows } from '../oracle/oracle.ts';
import { CompiledEvaluator } from '../matrix/evaluate-compiled.ts';
import { parseGrid, type Grid } from '../matrix/grid.ts';
import { observeGrid, reportGrid, serves, type ScenarioOutcome } from '../matrix/run.ts';
import { ScenarioError, type Probe, type Scenario } from '../matrix/scenario.ts';
import { nodeCIDR, ScenarioWorld, type PodInfo } from '../matrix/world.ts';
import type { Logger } from '../runtime/log.ts';
import type { Cluster } from '../localcluster/control-plane.ts';
import { resetCluster } from './reset.ts';
import { Sandbox, type SandboxPod } from './sandbox.ts';
import type { LinuxBackend } from '../agent/dataplane/choose.ts';

export interface E2eOutcome extends ScenarioOutcome { convergeMs: number[] }

export async function runScenarioOnSandbox(cluster: Cluster, scenario: Scenario, print: (l: string) => void, log: Logger, prefix = 'fe2e', dataplane?: LinuxBackend): Promise<E2eOutcome> {
  const world = new ScenarioWorld(scenario);
  await resetCluster(cluster.kubeConfig(), scenario.namespaces);
  const sandbox = await Sandbox.start({ cluster, nodes: scenario.nodes.map((name, i) => ({ name, podCIDR: nodeCIDR(i) })), prefix, log, dataplane });
  const outcome: E2eOutcome = { passed: true, grids: 0, mismatches: 0, convergeMs: [] };
  print(`== ${scenario.name} (${scenario.file}) [sandbox, real packets${dataplane ? `, ${dataplane}` : ''}]`);
  try {
    for (const p of world.livePods()) await sandbox.addPod(sandboxPod(p));
    await sandbox.waitEnforced(PolicyCompiler.compile(world.snapshot()));
    for (const [i, step] of scenario.steps.entries()) {
      const field = `steps[${i}]`;
      const changes = world.applyStep(step, field);
      const started = performance.now();
      for (const change of changes) await applyChange(sandbox, world, change);
      await sandbox.waitEnforced(PolicyCompiler.compile(world.snapshot()));
      const ms = performance.now() - started;
      outcome.convergeMs.push(ms);
      const snapshot = world.snapshot();
      const evaluator = new CompiledEvaluator((await sandbox.compiledPolicySets()).map((c) => c.spec));
      for (const probe of scenario.probes) {
        const pods = world.livePods();
        const names = pods.map((p) => p.key);
        const observed = probe.protocol === 'SCTP'
          ? observeGrid(pods, probe, (f) => evaluator.allows(f))
          : await probeGrid(sandbox, pods, probe);
        const expectedText = step.expect?.get(probe.text);
        const expected: Grid = expectedText !== undefined
          ? parseGrid(expectedText, names, (reason) => { throw new ScenarioError(scenario.file, `${field}.expect.${probe.text}`, reason); })
          : observeGrid(pods, probe, (f) => oracleAllows(snapshot, f));
        const note = ` (enforced in ${Math.round(ms)} ms${probe.protocol === 'SCTP' ? '; SCTP judged on the compiled rules' : ''}${expectedText === undefined ? '; expected: oracle' : ''})`;
        outcome.grids++;
        if (!reportGrid(print, `step ${i + 1} ${probe.text}`, names, observed, expected, note)) {
          outcome.passed = false;
          outcome.mismatches++;
        }
      }
    }
  } finally {
    await sandbox.stop();
  }
  return outcome;
}

function sandboxPod(p: PodInfo): SandboxPod {
  return { namespace: p.spec.namespace, name: p.spec.name, node: p.spec.node, ip: p.ip, labels: p.spec.labels, ports: p.spec.ports };
}

async function probeGrid(sandbox: Sandbox, pods: PodInfo[], probe: Probe): Promise<Grid> {
  const raw = await sandbox.probeAll(probe.protocol as 'TCP' | 'UDP', probe.port);
  // A port the destination does not serve is X even if a stray listener answered.
  return new Map(pods.map((src) => [src.key, new Map(pods.map((dst) => [dst.key, src === dst || (serves(dst, probe) && raw.get(src.key)!.get(dst.key)!)]))]));
}

async function applyChange(sandbox: Sandbox, world: ScenarioWorld, change: ClusterChange): Promise<void> {
  switch (change.kind) {
    case 'NetworkPolicy': {
      const p = change.object as V1NetworkPolicy;
      if (change.type === 'delete') await sandbox.deletePolicy(p.metadata!.namespace!, p.metadata!.name!);
      else await sandbox.applyPolicy(p);
      return;
    }
    case 'Namespace': {
      const ns = change.object as V1Namespace;
      await sandbox.kubelet.labelNamespace(ns.metadata!.name!, labelChanges(await currentNamespaceLabels(sandbox, ns.metadata!.name!), ns.metadata?.labels ?? {}));
      return;
    }
    case 'Pod': {
      const pod = change.object as V1Pod;
      const key = `${pod.metadata!.namespace}/${pod.metadata!.name}`;
      if (change.type === 'delete') return sandbox.removePod(key);
      const existing = sandbox.pods.get(key);
      if (!existing) {
        const info = world.livePods().find((p) => p.key === key)!;
        return sandbox.addPod(sandboxPod(info));
      }
      await sandbox.kubelet.labelPod(pod.metadata!.namespace!, pod.metadata!.name!, labelChanges(existing.pod.labels, pod.metadata?.labels ?? {}));
      existing.pod.labels = { ...(pod.metadata?.labels ?? {}) };
      return;
    }
    case 'Node':
      throw new Error('scenarios do not change nodes');
  }
}

async function currentNamespaceLabels(sandbox: Sandbox, name: string): Promise<Record<string, string>> {
  return (await sandbox.kc.makeApiClient(CoreV1Api).readNamespace({ name })).metadata?.labels ?? {};
}

function labelChanges(before: Record<string, string>, after: Record<string, string>): Record<string, string | null> {
  const out: Record<string, string | null> = { ...after };
  for (const k of Object.keys(before)) if (!(k in after)) out[k] = null;
  return out;
}
