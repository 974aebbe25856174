// `fencer operator`, as a function: wires the watches, the compiler, the writer, leader election,
// Events and the HTTP endpoints together, and takes them apart again in the right order.
import { CoordinationV1Api, CoreV1Api, CustomObjectsApi, KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serveHttp } from '../runtime/http.ts';
import { createLogger, type Logger } from '../runtime/log.ts';
import { PolicyCompiler, type ClusterChange } from './compile/compiler.ts';
import type { ObservedCps } from './cps-store.ts';
import { PolicyEventReporter } from './events.ts';
import { operatorRoutes } from './http.ts';
import { allInformers, createInformers, type OperatorInformers } from './informers.ts';
import { LeaderElector } from './leader.ts';
import { operatorMetrics, type OperatorMetrics } from './metrics.ts';
import { resolveOptions, type OperatorOptions, type OperatorOptionsInput } from './options.ts';
import { Reconciler } from './reconciler.ts';
import { SetWriter } from './set-writer.ts';
import { CpsWriter } from './writer.ts';
import { loadKubeConfig } from '../runtime/kubeconfig.ts';
import { reuseConnections } from '../runtime/kube-connections.ts';

export interface OperatorHandle {
  readonly options: OperatorOptions;
  readonly metrics: OperatorMetrics;
  readonly compiler: PolicyCompiler;
  /** The port /healthz, /readyz and /cluster-metrics are served on (undefined with metricsPort -1). */
  readonly httpPort?: number;
  isLeader(): boolean;
  /** Every watch has listed and the first compile is done. */
  ready(): boolean;
  /** Ready, nothing waiting to be compiled, nothing waiting to be written. */
  idle(): boolean;
  /** What the operator believes the CompiledPolicySets are (metadata, status and content hash). */
  compiledPolicySets(): ObservedCps[];
  /** Stops watching, finishes writes in flight, releases the Lease (unless releaseLease is false: a crash, for tests). */
  stop(opts?: { releaseLease?: boolean }): Promise<void>;
}

interface Parts {
  options: OperatorOptions;
  log: Logger;
  metrics: OperatorMetrics;
  compiler: PolicyCompiler;
  events: PolicyEventReporter;
  reconciler: Reconciler;
  writer: CpsWriter;
  setWriter: SetWriter;
  informers: OperatorInformers;
  elector: LeaderElector;
}

/** Starts the operator; resolves once its watches have listed and the first compile is done. */
export async function startOperator(input: OperatorOptionsInput = {}): Promise<OperatorHandle> {
  const options = resolveOptions(input);
  const log = options.log ?? createLogger('fencer-operator');
  // A KubeConfig handed in (tests, the sandbox) gets pooled connections too.
  const kc = options.kubeConfig ? reuseConnections(options.kubeConfig) : loadKubeConfig(options.kubeconfigPath);
  const state = { stopping: false, ready: false };
  const parts = assemble(options, kc, log, (leading) => leadershipChanged(parts, state, leading));
  const server = options.metricsPort < 0 ? undefined : await serveHttp(options.metricsPort, operatorRoutes(view(parts, state), parts.metrics), options.metricsHost);
  wireInformers(parts);
  log.info({ identity: options.identity, namespace: options.namespace, lease: options.leaseName }, 'operator starting: listing the cluster');
  await Promise.all(allInformers(parts.informers).map((i) => i.start()));
  if (state.stopping) return handle(parts, state, server);
  const specs = parts.reconciler.start();
  state.ready = true;
  log.info({ nodes: specs.size }, 'cluster listed and compiled; campaigning for the lease');
  parts.elector.start();
  return handle(parts, state, server);
}

function assemble(options: OperatorOptions, kc: KubeConfig, log: Logger, onLeadership: (leading: boolean) => void): Parts {
  const metrics = operatorMetrics();
  const compiler = new PolicyCompiler();
  const events = new PolicyEventReporter(kc.makeApiClient(CoreV1Api), options.identity, metrics, log);
  const parts = { options, log, metrics, compiler, events } as Parts;
  parts.reconciler = new Reconciler({ compiler, coalesceMs: options.coalesceMs, metrics, events, log, onCompiled: (changed, sets) => compiled(parts, changed, sets) });
  const custom = kc.makeApiClient(CustomObjectsApi);
  parts.setWriter = new SetWriter({
    custom,
    desired: (set) => compiler.sharedSet(set),
    setIds: () => compiler.sharedSetIds(),
    concurrency: options.writeConcurrency,
    metrics,
    log,
  });
  parts.writer = new CpsWriter({
    custom,
    desired: (node) => compiler.nodeSpec(node),
    setsReady: (node, refs) => parts.setWriter.ensureDelivered(node, refs),
    setRevision: (set) => parts.setWriter.revisionOf(set),
    nodeRef: (node) => parts.reconciler.nodeRef(node),
    nodeNames: () => compiler.nodeNames(),
    budgetBytes: options.cpsBudgetBytes,
    concurrency: options.writeConcurrency,
    pendingAfterMs: options.pendingAfterMs,
    metrics,
    log,
  });
  parts.informers = createInformers(kc, options.relistSeconds * 1000, log);
  parts.elector = new LeaderElector({
    coordination: kc.makeApiClient(CoordinationV1Api),
    namespace: options.namespace,
    name: options.leaseName,
    identity: options.identity,
    timings: options.lease,
    log,
    onChange: onLeadership,
  });
  return parts;
}

function wireInformers({ informers, reconciler, writer, setWriter }: Parts): void {
  const feed = <K extends ClusterChange['kind']>(kind: K) => (type: 'upsert' | 'delete', object: KubernetesObject) =>
    reconciler.handle({ kind, type, object } as ClusterChange);
  informers.namespaces.onChange(feed('Namespace'));
  informers.pods.onChange(feed('Pod'));
  informers.nodes.onChange(feed('Node'));
  informers.policies.onChange(feed('NetworkPolicy'));
  informers.cps.onChange((type, object) => {
    setWriter.noteCps(type, object);
    writer.observe(type, object);
  });
  informers.sets.onChange((type, object) => setWriter.observe(type, object));
}

function compiled(parts: Parts, changed: Map<string, number>, sets: string[]): void {
  parts.setWriter.schedule(sets);
  for (const [node, since] of changed) parts.writer.enqueue(node, since);
  if (parts.elector.isLeader()) void parts.events.flush();
}

function leadershipChanged(parts: Parts, state: { stopping: boolean }, leading: boolean): void {
  if (leading && state.stopping) return;
  parts.metrics.leader.set(leading ? 1 : 0);
  if (!leading) {
    void parts.writer.standBy();
    void parts.setWriter.standBy();
    return;
  }
  parts.setWriter.lead();
  parts.writer.lead();
  void parts.events.flush();
}

function view(parts: Parts, state: { ready: boolean }) {
  return {
    ready: () => state.ready,
    queueDepth: () => parts.reconciler.depth + parts.writer.depth + parts.setWriter.depth,
    compiledPolicySets: () => parts.writer.store.all(),
  };
}

function handle(parts: Parts, state: { stopping: boolean; ready: boolean }, server?: Server): OperatorHandle {
  const port = (server?.address() as AddressInfo | null)?.port;
  return {
    options: parts.options,
    metrics: parts.metrics,
    compiler: parts.compiler,
    httpPort: port,
    isLeader: () => parts.elector.isLeader(),
    ready: () => state.ready,
    idle: () => state.ready && parts.reconciler.idle() && parts.writer.idle() && parts.setWriter.idle(),
    compiledPolicySets: () => parts.writer.store.all(),
    stop: (opts) => stopOperator(parts, state, server, opts?.releaseLease ?? true),
  };
}

async function stopOperator(parts: Parts, state: { stopping: boolean }, server: Server | undefined, releaseLease: boolean): Promise<void> {
  if (state.stopping) return;
  state.stopping = true;
  parts.log.info('operator stopping');
  await Promise.all(allInformers(parts.informers).map((i) => i.stop()));
  parts.reconciler.stop();
  // Together: a spec write waiting for its sets is released when the set writer stands by.
  await Promise.all([parts.writer.standBy(), parts.setWriter.standBy()]);
  await parts.elector.stop(releaseLease);
  await new Promise<void>((resolve) => {
    if (!server) return resolve();
    server.close(() => resolve());
    server.closeAllConnections();
  });
  parts.log.info('operator stopped');
}
