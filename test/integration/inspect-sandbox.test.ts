// The inspect commands on the sandbox (real apiserver, operator, one agent per simulated node, nodes
// and pods as network namespaces): after every step of a few scenario files, explain agrees with
// the oracle for every pod pair and probe and finds every node in sync, verify finds each node's
// kernel equal to its CompiledPolicySet, and then names drift injected by hand.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { V1NetworkPolicy } from '@kubernetes/client-node';
import { LinuxDataplane } from '../../agent/dataplane/linux/dataplane.ts';
import { ExecRunner } from '../../agent/dataplane/linux/runner.ts';
import { loadScenario } from '../../matrix/scenario.ts';
import { nodeCIDR, ScenarioWorld } from '../../matrix/world.ts';
import { PolicyCompiler } from '../../operator/compile/compiler.ts';
import { oracleVerdict } from '../../oracle/oracle.ts';
import { silentLogger } from '../../runtime/log.ts';
import { resetCluster } from '../../sandbox/reset.ts';
import { Sandbox } from '../../sandbox/sandbox.ts';
import { explainCommand, runInspect, verifyCommand, type Output } from '../../inspect/commands.ts';
import type { Explanation } from '../../inspect/explain.ts';
import { testCluster } from './env.ts';
import { liveChain } from '../helpers/live-chain.ts';

function capture(): Output & { stdout: string; stderr: string } {
  const c = { stdout: '', stderr: '', out: (t: string) => { c.stdout += t; }, err: (t: string) => { c.stderr += t; } };
  return c;
}

const PREFIX = 'fins';
const FILES = ['test/scenarios/13-stacked-policies-union.yaml', 'test/scenarios/25-egress-ipblock-except.yaml', 'test/scenarios/50-aks-walkthroughs.yaml'];

for (const file of FILES) {
  test(`explain and verify on the sandbox: ${file}`, async () => {
    const cluster = testCluster();
    const kubeconfig = cluster.kubeconfigPath;
    const scenario = loadScenario(file);
    const world = new ScenarioWorld(scenario);
    await resetCluster(cluster.kubeConfig(), scenario.namespaces);
    // No drift repair during the test: the injected drift must stay until verify has seen it.
    const sandbox = await Sandbox.start({ cluster, nodes: scenario.nodes.map((name, i) => ({ name, podCIDR: nodeCIDR(i) })), prefix: PREFIX, log: silentLogger(), driftSeconds: 0 });
    const scratch = mkdtempSync(join(tmpdir(), 'fencer-inspect-sbx-'));
    try {
      for (const p of world.livePods()) {
        await sandbox.addPod({ namespace: p.spec.namespace, name: p.spec.name, node: p.spec.node, ip: p.ip, labels: p.spec.labels, ports: p.spec.ports });
      }
      const ports = scenario.probes.map((p) => `${p.port}/${p.protocol}`);
      for (const [i, step] of scenario.steps.entries()) {
        for (const change of world.applyStep(step, `steps[${i}]`)) {
          assert.equal(change.kind, 'NetworkPolicy', 'these scenarios change policies only');
          const p = change.object as V1NetworkPolicy;
          if (change.type === 'delete') await sandbox.deletePolicy(p.metadata!.namespace!, p.metadata!.name!);
          else await sandbox.applyPolicy(p);
        }
        const specs = PolicyCompiler.compile(world.snapshot());
        await sandbox.waitEnforced(specs);
        const snapshot = world.snapshot();
        for (const src of world.livePods()) for (const dst of world.livePods()) {
          const io = capture();
          const code = await runInspect(() => explainCommand({ from: src.key, to: dst.key, port: ports, kubeconfig, output: 'json' }, io), io);
          const at = `${file} step ${i + 1} ${src.key} -> ${dst.key}`;
          assert.equal(io.stderr, '', at);
          const e = JSON.parse(io.stdout) as Explanation;
          assert.ok(e.agrees, `${at}: the compiled rules and the oracle disagree`);
          assert.equal(code, e.allowed ? 0 : 1, at);
          for (const p of e.ports) {
            // The oracle on the scenario's own objects, not only on what the apiserver returned.
            assert.equal(p.allowed, oracleVerdict(snapshot, { srcIP: src.ip, dstIP: dst.ip, protocol: p.protocol, port: p.number }).allowed, `${at} ${p.port}`);
          }
          for (const n of e.nodes) assert.ok(n.reported && n.inSync && n.operatorCurrent, `${at}: ${JSON.stringify(n)}`);
        }
        for (const node of scenario.nodes) {
          const io = capture();
          const code = await runInspect(() => verifyCommand(node, { netns: sandbox.topology.nodeNetns(node), kubeconfig, hookPosition: 'first' }, io), io);
          assert.equal(code, 0, `${file} step ${i + 1} ${node}: ${io.stdout}${io.stderr}`);
        }
      }

      // Drift by hand on a node with rules: a deleted rule and an extra set member, seen by the CLI through --sandbox.
      const cps = await sandbox.compiledPolicySets();
      const withRules = cps.find((c) => c.spec.targets.some((t) => (t.ingress?.rules.length ?? 0) + (t.egress?.rules.length ?? 0) > 0))!;
      const node = withRules.metadata.name;
      const netns = sandbox.topology.nodeNetns(node);
      const target = withRules.spec.targets.find((t) => (t.ingress?.rules.length ?? 0) + (t.egress?.rules.length ?? 0) > 0)!;
      const direction = target.ingress?.rules.length ? 'ingress' : 'egress';
      const rule = target[direction]!.rules[0];
      const tools = await new LinuxDataplane({ runner: new ExecRunner(['ip', 'netns', 'exec', netns]) }).iptables();
      const save = execFileSync('ip', ['netns', 'exec', netns, tools.save, '-t', 'filter'], { encoding: 'utf8' });
      const chain = liveChain(save, `FENCER-${direction === 'ingress' ? 'I' : 'E'}-${target.podSet.slice(2)}`);
      const lines = save.split('\n').filter((l) => l.startsWith(`-A ${chain} `));
      const position = lines.findIndex((l) => l.includes(rule.id));
      assert.ok(position >= 0, lines.join('\n'));
      execFileSync('ip', ['netns', 'exec', netns, tools.iptables, '-w', '-D', chain, String(position + 1)]);
      const peerSet = withRules.spec.ipSets.find((s) => rule.peers.includes(s.name) && s.kind === 'ip');
      if (peerSet) execFileSync('ip', ['netns', 'exec', netns, 'ipset', 'add', `FENCER-${peerSet.name}`, '10.99.99.99']);
      const state = join(scratch, 'sandbox.json');
      writeFileSync(state, JSON.stringify({ pid: process.pid, prefix: PREFIX, kubeconfig, kubectl: 'kubectl', pods: [] }));
      const r = spawnSync(process.execPath, ['cli/main.ts', 'verify', node, '--sandbox'], { encoding: 'utf8', env: { ...process.env, FENCER_SANDBOX_STATE: state } });
      assert.equal(r.status, 1, r.stdout + r.stderr);
      assert.match(r.stdout, new RegExp(`chain ${chain}: rule missing: ${rule.policy.replace('/', '\\/')} ${direction} rule ${rule.index}: `));
      if (peerSet) assert.match(r.stdout, new RegExp(`set FENCER-${peerSet.name} \\(.*\\): 1 member not in the spec: 10\\.99\\.99\\.99`));
    } finally {
      await sandbox.stop();
      rmSync(scratch, { recursive: true, force: true });
    }
  });
}
