// `npm run bench -- watch-cost`: what pod churn costs etcd, the apiserver and the nodes' watches, with
// the real operator against a real kube-apiserver + etcd, for N simulated nodes in two designs:
// Fencer's (each node watches its CompiledPolicySet and its AddressSets) and Azure NPM's (each node
// watches every Pod, Namespace and NetworkPolicy). Per size: a fresh control plane, the synthetic
// cluster (50 pods a node) created through the API, the watch-everything phases (operator not
// running: that design has none), then the operator and the Fencer phases; each rate runs a bounded
// time. Environment: WATCH_COST_NODES (100,500,1000), WATCH_COST_RATES (10,100), WATCH_COST_SECONDS
// (20), WATCH_COST_DESIGNS (watch-everything,fencer), WATCH_COST_NODES_PER_CONNECTION (1).
import { execFileSync } from 'node:child_process';
import { writeFileSync, mkdirSync } from 'node:fs';
import { startOperator, type OperatorHandle } from '../operator/operator.ts';
import { silentLogger } from '../runtime/log.ts';
import { startControlPlane } from '../localcluster/control-plane.ts';
import { ApiClient, endpointOf } from './h2.ts';
import { populate } from './populate.ts';
import { runPhase, type PhaseContext } from './watch-phase.ts';
import { attributeOperator, toRow, type WatchCostRow } from './watch-cost-row.ts';
import type { Design } from './watch-designs.ts';

export interface WatchCostOptions {
  nodes: number[];
  rates: number[];
  seconds: number;
  designs: Design[];
  nodesPerConnection: number;
  podsPerNode: number;
}

export interface WatchCostRun {
  nodes: number;
  pods: number;
  policies: number;
  namespaces: number;
  /** Seconds to create each kind through the API. */
  populateSeconds: Record<string, number>;
  podBytes: number;
  operatorStartSeconds?: number;
  /** Wall time of the whole size: control plane, population, every phase, teardown. */
  wallSeconds: number;
  rows: WatchCostRow[];
  error?: string;
}

export interface WatchCostResult {
  commit: string;
  options: WatchCostOptions;
  runs: WatchCostRun[];
}

const list = (text: string | undefined, fallback: string) => (text || fallback).split(',').map((s) => s.trim()).filter(Boolean);

export function optionsFromEnv(env = process.env): WatchCostOptions {
  return {
    nodes: list(env.WATCH_COST_NODES, '100,500,1000').map(Number),
    rates: list(env.WATCH_COST_RATES, '10,100').map(Number),
    seconds: Number(env.WATCH_COST_SECONDS || 20),
    designs: list(env.WATCH_COST_DESIGNS, 'watch-everything,fencer') as Design[],
    nodesPerConnection: Number(env.WATCH_COST_NODES_PER_CONNECTION || 1),
    podsPerNode: 50,
  };
}

function commit(): string {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'operator', 'crds'], { encoding: 'utf8' }).trim();
    return dirty ? `${head} + uncommitted changes in operator/ or crds/` : head;
  } catch {
    return 'unknown';
  }
}

async function until(what: string, timeoutMs: number, check: () => boolean): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!check()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function runSize(nodes: number, o: WatchCostOptions): Promise<WatchCostRun> {
  const pods = nodes * o.podsPerNode;
  const size = { nodes, pods, policies: Math.round(pods / 10) };
  const started = performance.now();
  const run: WatchCostRun = { nodes, pods, policies: size.policies, namespaces: Math.max(1, Math.round(pods / 100)), populateSeconds: {}, podBytes: 0, wallSeconds: 0, rows: [] };
  const cp = await startControlPlane();
  let api: ApiClient | undefined;
  let operator: OperatorHandle | undefined;
  try {
    await cp.installCrds();
    const ep = await endpointOf(cp.kubeConfig());
    api = await ApiClient.open(ep, 4);
    console.error(`watch-cost: ${nodes} nodes: creating ${run.namespaces} namespaces, ${nodes} nodes, ${size.policies} policies, ${pods} pods ...`);
    const population = await populate(api, size);
    run.populateSeconds = population.seconds;
    run.podBytes = population.podBytes;
    const ctx: PhaseContext = { ep, api, etcdUrl: cp.etcdUrl, model: population.model, nodes, nodesPerConnection: o.nodesPerConnection };
    const quiet = population.model.quietNodes.length;
    const phases = async (design: Design) => {
      for (const rate of o.rates) {
        console.error(`watch-cost: ${nodes} nodes, ${design}, ${rate} events/s for ${o.seconds} s ...`);
        run.rows.push(toRow(nodes, await runPhase(ctx, design, rate, o.seconds), quiet));
      }
    };
    if (o.designs.includes('watch-everything')) await phases('watch-everything');
    if (o.designs.includes('fencer')) {
      const opStarted = performance.now();
      // No agents here: the operator's InSync=Pending marks (an artefact of their absence) stay off.
      operator = await startOperator({ kubeConfig: cp.kubeConfig(), metricsPort: -1, log: silentLogger(), identity: 'bench-watch-cost', pendingAfterMs: 86_400_000 });
      const op = operator;
      await until('the operator to write every CompiledPolicySet', 900_000, () => op.isLeader() && op.idle() && op.compiledPolicySets().length >= nodes);
      run.operatorStartSeconds = (performance.now() - opStarted) / 1000;
      ctx.operator = op;
      await phases('fencer');
    }
  } catch (e) {
    run.error = (e as Error).stack ?? String(e);
    console.error(`watch-cost: ${nodes} nodes failed: ${run.error}`);
  } finally {
    await operator?.stop().catch(() => {});
    api?.close();
    await cp.stop();
  }
  run.wallSeconds = (performance.now() - started) / 1000;
  return run;
}

export async function benchWatchCost(o = optionsFromEnv()): Promise<WatchCostResult> {
  const result: WatchCostResult = { commit: commit(), options: o, runs: [] };
  for (const nodes of o.nodes) result.runs.push(await runSize(nodes, o));
  attributeOperator(result.runs.flatMap((r) => r.rows));
  mkdirSync(new URL('./out/', import.meta.url), { recursive: true });
  writeFileSync(new URL('./out/watch-cost.json', import.meta.url), JSON.stringify(result.runs.flatMap((r) => r.rows), null, 2) + '\n');
  return result;
}
