// Measures what the chart's resource requests are sized from (docs/install.md, "Resources"): the
// operator and one agent as separate `node cli/main.ts …` processes, exactly as the images run them,
// against a real kube-apiserver holding a synthetic cluster (bench/synthetic.ts). The agent enforces
// the CompiledPolicySet of the node with the most to enforce, in a throwaway network namespace (root needed).
//
//   node scripts/measure-resources.ts [nodes pods policies] [--churn-per-second N] [--seconds S]
//
// AGENT_NODE_FLAGS="--max-semi-space-size=1" runs the agent (and fills the compile cache) with those
// Node flags, to weigh such flags (docs/decisions.md 15); the images run none.
//
// Per process it samples /proc/<pid>: resident memory (VmRSS, peak VmHWM) and CPU time (utime+stime,
// the children it waited for: cutime+cstime, and its live children's, such as the agent's shell that
// runs ipset/iptables), in three phases:
// start-up (process start → every CPS written and that node enforced), idle, and pod churn (label
// changes at a steady rate, each changing some nodes' specs).
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { CustomObjectsApi } from '@kubernetes/client-node';
import { CPS_GROUP, CPS_PLURAL, CPS_VERSION, type CompiledPolicySet } from '../crds/types.ts';
import { startControlPlane } from '../localcluster/control-plane.ts';
import { kubelet } from '../localcluster/kubelet.ts';
import { podCIDR, syntheticCluster, type SyntheticSize } from '../bench/synthetic.ts';
import { freePort } from '../netns/free-port.ts';
import { childPids } from '../netns/proc.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const args = process.argv.slice(2);
const flag = (name: string, fallback: number) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const positional = args.filter((a, i) => !a.startsWith('--') && !args[i - 1]?.startsWith('--')).map(Number);
const size: SyntheticSize = { nodes: positional[0] ?? 10, pods: positional[1] ?? 1000, policies: positional[2] ?? 100 };
const churnPerSecond = flag('--churn-per-second', 20);
const phaseSeconds = flag('--seconds', 30);
const TICKS = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

interface Sample { rssMiB: number; hwmMiB: number; cpuSeconds: number }

function sample(pid: number): Sample {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0);
  // Fields after the command name "(…)": state is field 3; utime, stime, cutime, cstime are 14..17.
  return { rssMiB: kb('VmRSS') / 1024, hwmMiB: kb('VmHWM') / 1024, cpuSeconds: cpuTicks(pid) / TICKS };
}

/** CPU ticks of a process, of the children it reaped, and of its live children (recursively). */
function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  let ticks = [11, 12, 13, 14].reduce((sum, i) => sum + Number(fields[i]), 0);
  for (const child of childPids(pid)) {
    try {
      ticks += cpuTicks(child);
    } catch { /* a child that just ended is counted in cutime once reaped */ }
  }
  return ticks;
}

class Meter {
  private peakRss = 0;
  private timer: NodeJS.Timeout;
  private readonly pid: number;
  constructor(pid: number) {
    this.pid = pid;
    this.timer = setInterval(() => {
      try {
        this.peakRss = Math.max(this.peakRss, sample(pid).rssMiB);
      } catch {
        clearInterval(this.timer); // the process is gone; the phase's own sample reports it
      }
    }, 200);
  }
  /** Runs `during`, returns CPU cores used on average, the resident memory at the end and its peak. */
  async phase(during: () => Promise<unknown>): Promise<{ seconds: number; cores: number; rssMiB: number; peakMiB: number }> {
    this.peakRss = 0;
    const t0 = performance.now();
    const s0 = sample(this.pid);
    await during();
    const s1 = sample(this.pid);
    const seconds = (performance.now() - t0) / 1000;
    return { seconds, cores: (s1.cpuSeconds - s0.cpuSeconds) / seconds, rssMiB: s1.rssMiB, peakMiB: Math.max(this.peakRss, s1.rssMiB) };
  }
  stop(): void {
    clearInterval(this.timer);
  }
}


// As in the images: Node's compile cache filled once by `--help` (Dockerfile.agent), so no process
// loads the TypeScript stripper. Kept between runs; keyed by Node version and each file's content.
const compileCache = join(tmpdir(), 'fencer-measure-compile-cache');
execFileSync(process.execPath, [...(process.env.AGENT_NODE_FLAGS ?? '').split(' ').filter(Boolean), `${root}cli/main.ts`, '--help'], { stdio: 'ignore', env: { ...process.env, NODE_COMPILE_CACHE: compileCache } });

function run(argv: string[]): ChildProcess {
  const nodeFlags = argv[0] === 'agent' ? (process.env.AGENT_NODE_FLAGS ?? '').split(' ').filter(Boolean) : [];
  const child = spawn(process.execPath, [...nodeFlags, `${root}cli/main.ts`, ...argv], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, NODE_COMPILE_CACHE: compileCache } });
  if (child.pid === undefined) throw new Error(`could not start ${argv.join(' ')}`);
  child.once('exit', (code, signal) => {
    if (!stopping) process.stderr.write(`[measure] ${argv[0]} exited early (${code ?? signal})\n`);
  });
  return child;
}
let stopping = false;

/** fencer_agent_applies_total by result, from the agent's /node-metrics. */
async function agentApplies(port: number): Promise<Record<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${port}/node-metrics`)).text();
  return Object.fromEntries([...text.matchAll(/^fencer_agent_applies_total\{result="(\w+)"\} (\d+)/gm)].map((m) => [m[1], Number(m[2])]));
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 300_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

async function inBatches<T>(items: T[], width: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < items.length; i += width) await Promise.all(items.slice(i, i + width).map(fn));
}

const cp = await startControlPlane();
const netns = `fencer-m-${randomBytes(3).toString('hex')}`;
const children: ChildProcess[] = [];
try {
  await cp.installCrds();
  const kc = cp.kubeConfig();
  const k = kubelet(kc);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const snapshot = syntheticCluster(size);
  const t = performance.now();
  await Promise.all(snapshot.namespaces.map((ns) => k.createNamespace(ns.metadata!.name!, ns.metadata!.labels)));
  await Promise.all(snapshot.nodes.map((_, i) => k.createNode(`node-${i}`, podCIDR(i))));
  await inBatches(snapshot.pods, 32, (p) => k.createPod({
    namespace: p.metadata!.namespace!, name: p.metadata!.name!, node: p.spec!.nodeName!, labels: p.metadata!.labels,
    ports: p.spec!.containers[0].ports?.map((port) => ({ name: port.name, containerPort: port.containerPort })), ip: p.status!.podIP,
  }));
  const net = (await import('@kubernetes/client-node')).NetworkingV1Api;
  const netApi = kc.makeApiClient(net);
  await inBatches(snapshot.policies, 16, (policy) => netApi.createNamespacedNetworkPolicy({ namespace: policy.metadata!.namespace!, body: policy }));
  process.stderr.write(`[measure] cluster ${JSON.stringify(size)} created in ${((performance.now() - t) / 1000).toFixed(1)} s\n`);

  const listCps = async () => ((await custom.listClusterCustomObject({ group: CPS_GROUP, version: CPS_VERSION, plural: CPS_PLURAL })) as { items: CompiledPolicySet[] }).items;
  const opPort = await freePort();
  const agentPort = await freePort();
  execFileSync('ip', ['netns', 'add', netns]);

  const operator = run(['operator', '--kubeconfig', cp.kubeconfigPath, '--metrics-port', String(opPort), '--metrics-host', '127.0.0.1', '--identity', 'measure', '--log-level', 'warn']);
  children.push(operator);
  const opMeter = new Meter(operator.pid!);
  const opStart = await opMeter.phase(() => until('every CPS written', async () => (await listCps()).length === size.nodes));

  // The node with the most to enforce: the pod churn then moves members of its sets and its targets.
  const node = (await listCps()).sort((a, b) => (b.spec.counts.rules - a.spec.counts.rules) || (b.spec.counts.entries - a.spec.counts.entries) || (a.metadata.name < b.metadata.name ? -1 : 1))[0].metadata.name;
  const agent = run(['agent', '--node', node, '--kubeconfig', cp.kubeconfigPath, '--netns', netns, '--metrics-port', String(agentPort), '--hook-position', 'first']);
  children.push(agent);
  const agentMeter = new Meter(agent.pid!);
  const enforced = async () => {
    const cps = (await listCps()).find((c) => c.metadata.name === node);
    return !!cps && cps.status?.observedGeneration === cps.metadata.generation && cps.status?.appliedHash === cps.spec.contentHash;
  };
  const agentStart = await agentMeter.phase(() => until(`${node} enforced`, enforced));
  const node0 = (await listCps()).find((c) => c.metadata.name === node)!;

  const idle = () => sleep(phaseSeconds * 1000);
  const [opIdle, agentIdle] = await Promise.all([opMeter.phase(idle), agentMeter.phase(idle)]);

  let changes = 0;
  const churn = async () => {
    const end = Date.now() + phaseSeconds * 1000;
    const pods = snapshot.pods;
    while (Date.now() < end) {
      const tick = Date.now();
      await Promise.all(Array.from({ length: churnPerSecond }, () => {
        const pod = pods[Math.floor(Math.random() * pods.length)];
        changes++;
        return k.labelPod(pod.metadata!.namespace!, pod.metadata!.name!, { app: `app-${Math.floor(Math.random() * 10)}` });
      }));
      await sleep(Math.max(0, 1000 - (Date.now() - tick)));
    }
    await until(`${node} enforced after the churn`, enforced, 60_000);
  };
  const [opChurn, agentChurn] = await Promise.all([opMeter.phase(churn), agentMeter.phase(async () => { await sleep(100); await until('churn', async () => changes > 0); await sleep(phaseSeconds * 1000); })]);
  const after = (await listCps()).find((c) => c.metadata.name === node)!;
  const agentGenerations = (after.metadata.generation ?? 0) - (node0.metadata.generation ?? 0);
  const peak = { operator: sample(operator.pid!).hwmMiB, agent: sample(agent.pid!).hwmMiB };
  opMeter.stop();
  agentMeter.stop();

  const fmt = (p: { seconds: number; cores: number; rssMiB: number; peakMiB: number }) =>
    `${p.seconds.toFixed(1)} s, CPU ${(p.cores * 1000).toFixed(0)}m, RSS ${p.rssMiB.toFixed(0)} MiB (peak ${p.peakMiB.toFixed(0)})`;
  const c0 = node0.spec.counts;
  const applies = await agentApplies(agentPort);
  console.log(JSON.stringify({ size, churnPerSecond, node, counts: c0, agentApplies: applies, opStart, opIdle, opChurn, agentStart, agentIdle, agentChurn, agentGenerations, peak }));
  console.log(`cluster: ${size.nodes} nodes, ${size.pods} pods, ${size.policies} policies; the agent's node ${node} enforces ${c0.rules} rules, ${c0.sets} sets (${c0.sharedSets ?? 0} shared), ${c0.entries} entries`);
  console.log(`operator start-up: ${fmt(opStart)}`);
  console.log(`operator idle:     ${fmt(opIdle)}`);
  console.log(`operator churn (${churnPerSecond} pod label changes/s): ${fmt(opChurn)}`);
  console.log(`agent start-up:    ${fmt(agentStart)}`);
  console.log(`agent idle:        ${fmt(agentIdle)} (drift check every 10 s)`);
  console.log(`agent churn:       ${fmt(agentChurn)}; ${agentGenerations} new generations of ${node}; applies by kind since start: ${JSON.stringify(applies)}`);
  console.log(`peak RSS (VmHWM): operator ${peak.operator.toFixed(0)} MiB, agent ${peak.agent.toFixed(0)} MiB`);
} finally {
  stopping = true;
  for (const child of children) child.kill('SIGTERM');
  await sleep(1500);
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  try {
    execFileSync('ip', ['netns', 'del', netns], { stdio: 'ignore' });
  } catch {
    // never created
  }
  await cp.stop();
}
