// The test bed of the kernel-tool failure tests (fault-kernel-tools*.test.ts): two sandbox nodes,
// the first one's agent behind a PATH shim that makes chosen tools exit 1 for a while. The agent
// must report Degraded with the tool's own words, retry with growing back-off, not crash however
// many failures, keep the last state enforced, and recover once the tool works again.
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { V1NetworkPolicy } from '@kubernetes/client-node';
import type { Cluster } from '../../localcluster/control-plane.ts';
import { silentLogger } from '../../runtime/log.ts';
import { resetCluster } from '../../sandbox/reset.ts';
import { Sandbox } from '../../sandbox/sandbox.ts';
import { applyPolicy, getCps, oracleFlows, pod, sleep, waitConverged, waitFor } from './harness.ts';
import { ProbeLoop } from './probe-loop.ts';
import { spawnAgent, type FencerProcess } from './processes.ts';
import { recordRow } from './report.ts';
import { createShim, type Shim, type ShimmedTool } from './shim.ts';

export interface ToolFailure {
  id: string;
  what: string;
  tools: ShimmedTool[];
  message: string;
  /** The change that waits while the tools fail. */
  policy: V1NetworkPolicy;
}

export interface ToolBedOptions {
  cluster: Cluster;
  namespace: string;
  nodes: [string, string];
  prefix: string;
  dataplane: 'iptables' | 'nftables';
  /** What the kernel holds on the first node, to compare before and after (iptables-save, nft list …). */
  snapshot: (netns: string) => Promise<unknown>;
  testFile: string;
}

export class ToolBed {
  readonly opts: ToolBedOptions;
  readonly sandbox: Sandbox;
  readonly shim = createShim();
  readonly agents: FencerProcess[] = [];
  readonly logs = mkdtempSync(join(tmpdir(), 'fencer-fault-tools-'));

  private constructor(opts: ToolBedOptions, sandbox: Sandbox) {
    this.opts = opts;
    this.sandbox = sandbox;
  }

  /** The web policy: client pods may reach web on `ports`, and `block` too when given. */
  webPolicy(ports: number[], block?: string): V1NetworkPolicy {
    const from = [{ podSelector: { matchLabels: { role: 'client' } } }, ...(block ? [{ ipBlock: { cidr: block } }] : [])];
    return {
      apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { namespace: this.opts.namespace, name: 'web' },
      spec: { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ from, ports: ports.map((port) => ({ protocol: 'TCP', port })) } as never] },
    };
  }

  static async start(opts: ToolBedOptions): Promise<ToolBed> {
    const [first, second] = opts.nodes;
    await resetCluster(opts.cluster.kubeConfig(), new Map([[opts.namespace, {}]]));
    const sandbox = await Sandbox.start({ cluster: opts.cluster, nodes: [{ name: first, podCIDR: '10.244.1.0/24' }, { name: second, podCIDR: '10.244.2.0/24' }], prefix: opts.prefix, log: silentLogger(), agents: 'none' });
    const bed = new ToolBed(opts, sandbox);
    try {
      const ns = opts.namespace;
      await sandbox.addPod(pod(ns, 'web', first, '10.244.1.10', { app: 'web' }, [80, 81, 82]));
      await sandbox.addPod(pod(ns, 'other', first, '10.244.1.11', { role: 'other' }));
      await sandbox.addPod(pod(ns, 'client', second, '10.244.2.10', { role: 'client' }));
      await applyPolicy(sandbox.kc, bed.webPolicy([80]));
      for (const node of opts.nodes) {
        bed.agents.push(await spawnAgent({
          node, netns: sandbox.topology.nodeNetns(node), kubeconfig: opts.cluster.kubeconfigPath, logFile: join(bed.logs, `${node}.log`),
          path: node === first ? bed.shim.path() : undefined, driftSeconds: 5, dataplane: opts.dataplane,
        }));
      }
      await waitConverged(sandbox.kc, opts.nodes);
      return bed;
    } catch (e) {
      await bed.stop();
      throw e;
    }
  }

  async stop(): Promise<void> {
    for (const a of this.agents) await a.kill('SIGKILL');
    await this.sandbox.stop();
    await this.sandbox.kubelet.deleteNamespace(this.opts.namespace).catch(() => undefined);
    for (const n of this.opts.nodes) await this.sandbox.kubelet.deleteNode(n).catch(() => undefined);
    this.shim.destroy();
    if (process.env.FENCER_KEEP_LOGS) console.error(`agent logs kept in ${this.logs}`);
    else rmSync(this.logs, { recursive: true, force: true });
  }

  /** Makes `c.tools` fail for `failSeconds` while `c.policy` waits, then lets them work; asserts and records the row. */
  async run(t: TestContext, c: ToolFailure, failSeconds: number): Promise<void> {
    const { sandbox, shim } = this;
    const [node] = this.opts.nodes;
    const agent = this.agents[0];
    const kc = sandbox.kc;
    const netns = sandbox.topology.nodeNetns(node);
    const before = await this.opts.snapshot(netns);
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
        const d = (await getCps(kc, node))?.status?.conditions?.find((x) => x.type === 'Degraded');
        degradedMessage = d?.message ?? '';
        return d?.status === 'True' && d.reason === 'ApplyFailed' && degradedMessage.includes('injected');
      }, 15_000, 100);
      const health = await fetch(`http://127.0.0.1:${agent.metricsPort}/healthz`);
      assert.equal(health.status, 503, '/healthz says degraded');
      await sleep(Math.max(0, failSeconds * 1000 - (Date.now() - since)));
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
    assert.deepEqual(await this.opts.snapshot(netns), before, 'the last good state stays in the kernel');
    shim.clear();
    const cleared = performance.now();
    const convergeMs = await waitConverged(kc, this.opts.nodes, 40_000);
    const health = await fetch(`http://127.0.0.1:${agent.metricsPort}/healthz`);
    const crashLines = agent.log().split('\n').filter((l) => /panic|uncaught|unhandled|FATAL|"level":60/i.test(l));
    t.diagnostic(`status: "${degradedMessage.slice(0, 160)}"; ${toolRuns} failed tool runs, ${attemptTimes.length} apply attempts over ${failSeconds} s, gaps ${gaps.join(', ')} ms; recovered ${Math.round(performance.now() - cleared)} ms after the tool was fixed; probes ${loop.stats.sent} sent, ${loop.stats.failed} failed`);
    recordRow({
      id: c.id,
      fault: `${c.what} failing for ${failSeconds} s while a new policy generation waits`,
      injection: `PATH shim makes ${c.tools.join(', ')} exit 1 with "${c.message}", then works again`,
      observed: `status Degraded/ApplyFailed quoting the tool's stderr, /healthz 503; ${attemptTimes.length} attempts with back-off (gaps ${gaps.slice(0, 8).map((g) => (g / 1000).toFixed(1)).join(', ')} s); process never exited, nothing logged at fatal level; last good state kept in the kernel; recovered ${((performance.now() - cleared) / 1000).toFixed(1)} s after the tool was fixed (the pending back-off)`,
      convergeMs: Math.round(convergeMs),
      probes: { failed: loop.stats.failed, sent: loop.stats.sent },
      statesLost: 0,
      test: this.opts.testFile,
    });
    assert.equal(health.status, 200, '/healthz is ok again');
    assert.deepEqual(crashLines, []);
    assert.equal(loop.stats.failed, 0, JSON.stringify(loop.stats.failures));
    assert.ok(attemptTimes.length >= 3, `retried (${attemptTimes.length} attempts)`);
    assert.ok(attemptTimes.length <= 12, `no retry storm: ${attemptTimes.length} attempts in ${failSeconds} s`);
    if (failSeconds >= 10) assert.ok(Math.max(...gaps) >= 2000, `the back-off grows: gaps ${gaps.join(', ')} ms`);
  }
}
