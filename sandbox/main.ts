// `fencer sandbox`: the whole of Fencer on one machine. Prints progress, walks through the example
// policies with a live connectivity matrix, then keeps running until Ctrl-C and cleans up.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ScenarioWorld, nodeCIDR } from '../matrix/world.ts';
import { formatGrid, type Grid } from '../matrix/grid.ts';
import { createLogger } from '../runtime/log.ts';
import { startControlPlane } from '../localcluster/control-plane.ts';
import { Topology } from '../netns/topology.ts';
import { resetCluster } from './reset.ts';
import { Sandbox } from './sandbox.ts';
import { alive, readState, removeState, writeState } from './state.ts';
import { examplePolicies, exampleWorkload } from './walkthrough.ts';

export interface SandboxCommandOptions { nodes: number; prefix: string; once?: boolean; dataplane?: string }

const say = (m: string) => process.stderr.write(`[sandbox] ${m}\n`);

export async function runSandbox(opts: SandboxCommandOptions): Promise<number> {
  const previous = readState();
  if (previous && alive(previous.pid)) {
    say(`a sandbox is already running (pid ${previous.pid}); stop it or run \`fencer sandbox --down\``);
    return 2;
  }
  say('preparing the machine (kernel tools; control-plane binaries are built on the first run, about 4 minutes) ...');
  const root = fileURLToPath(new URL('..', import.meta.url));
  if (spawnSync('bash', [`${root}scripts/setup.sh`], { stdio: 'inherit' }).status !== 0) return 1;
  say('starting etcd and kube-apiserver ...');
  const cp = await startControlPlane();
  const log = createLogger('sandbox', process.env.FENCER_LOG_LEVEL ?? 'warn');
  const nodes = Array.from({ length: opts.nodes }, (_, i) => `node-${i + 1}`);
  const workload = exampleWorkload(nodes);
  let sandbox: Sandbox | undefined;
  try {
    await resetCluster(cp.kubeConfig(), workload.namespaces);
    say(`starting the operator and ${nodes.length} agents on ${nodes.length} simulated nodes ...`);
    sandbox = await Sandbox.start({ cluster: cp, nodes: nodes.map((name, i) => ({ name, podCIDR: nodeCIDR(i) })), prefix: opts.prefix, log, agents: 'processes', dataplane: opts.dataplane === 'iptables' || opts.dataplane === 'nftables' ? opts.dataplane : undefined });
    const world = new ScenarioWorld(workload);
    for (const p of world.livePods()) await sandbox.addPod({ namespace: p.spec.namespace, name: p.spec.name, node: p.spec.node, ip: p.ip, labels: p.spec.labels, ports: p.spec.ports });
    // Ctrl-C also reaches the harness's crash handlers, which tear the sandbox down synchronously and
    // end the process (130) before the orderly path below finishes: the state file goes at exit too.
    process.on('exit', () => {
      if (readState()?.pid === process.pid) removeState();
    });
    writeState({
      pid: process.pid, prefix: opts.prefix, kubeconfig: cp.kubeconfigPath, kubectl: `${cp.binDir}/kubectl`,
      pods: [...sandbox.pods.values()].map(({ pod, handle }) => ({ key: `${pod.namespace}/${pod.name}`, netns: handle.netns, ip: pod.ip, tcp: [...handle.tcp], udp: [...handle.udp] })),
    });
    await printMatrix(sandbox, 'no policies yet');
    for (const { file, policy, title } of examplePolicies()) {
      await sandbox.applyPolicy(policy);
      const ms = await waitQuiet(sandbox);
      await printMatrix(sandbox, `${title} (examples/${file}; enforced on every node in ${Math.round(ms)} ms)`);
    }
    summary(sandbox, cp.kubeconfigPath, `${cp.binDir}/kubectl`);
    if (!opts.once) await untilSignal();
    return 0;
  } finally {
    say('stopping and removing every namespace, link, process and temp file ...');
    await sandbox?.stop();
    await cp.stop();
    removeState();
  }
}

/** Waits until every node enforces what the operator last wrote (the operator is the reference here). */
async function waitQuiet(sandbox: Sandbox): Promise<number> {
  const started = performance.now();
  for (let i = 0; i < 400; i++) {
    await new Promise((r) => setTimeout(r, 25));
    if (!sandbox.operator.idle()) continue;
    const sets = await sandbox.compiledPolicySets();
    if (sets.length && sets.every((c) => c.status?.appliedHash === c.spec.contentHash)) return performance.now() - started;
  }
  throw new Error('the sandbox did not converge within 10 s');
}

async function printMatrix(sandbox: Sandbox, title: string): Promise<void> {
  const grid: Grid = await sandbox.probeAll('TCP', 80);
  const names = [...grid.keys()];
  console.log(`\n${title}\nTCP/80 (rows: from, columns: to; . connects, X blocked):`);
  for (const line of formatGrid(grid, names)) console.log(`  ${line}`);
}

function summary(sandbox: Sandbox, kubeconfig: string, kubectl: string): void {
  const agents = [...sandbox.agentMetricsPorts()].map(([node, port]) => `  ${node}: http://127.0.0.1:${port}/node-metrics`);
  console.log(`
The sandbox is running.
  kubeconfig:        ${kubeconfig}
  what nodes enforce: ${kubectl} --kubeconfig ${kubeconfig} get cps
  shared sets:       ${kubectl} --kubeconfig ${kubeconfig} get aset
  try a policy:      ${kubectl} --kubeconfig ${kubeconfig} apply -f examples/01-deny-all-inbound.yaml
  current matrix:    fencer sandbox matrix
  operator metrics:  http://127.0.0.1:${sandbox.operator.httpPort}/cluster-metrics
  agent metrics:
${agents.join('\n')}
Ctrl-C stops it and removes everything it created.`);
}

function untilSignal(): Promise<void> {
  return new Promise((resolve) => {
    process.on('SIGINT', () => resolve());
    process.on('SIGTERM', () => resolve());
  });
}

/** `fencer sandbox --down`: stops a running sandbox or removes what a crashed one left. */
export async function sandboxDown(prefix: string): Promise<void> {
  const state = readState();
  if (state && alive(state.pid)) {
    process.kill(state.pid, 'SIGTERM');
    for (let i = 0; i < 100 && alive(state.pid); i++) await new Promise((r) => setTimeout(r, 100));
  }
  await Topology.cleanupPrefix(state?.prefix ?? prefix);
  removeState();
  say('nothing of a sandbox is left');
}
