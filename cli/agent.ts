// `fencer agent`: enforce this node's CompiledPolicySet; `--cleanup` removes everything Fencer owns.
import { hostname } from 'node:os';
import type { Server } from 'node:http';
import type { Command } from 'commander';
import type { Registry } from 'prom-client';
import { CpsStatusWriter, ownCpsInformer, sharedSetInformers } from '../agent/cps-client.ts';
import { SharedSetCache } from '../agent/shared-sets.ts';
import { toolsFor, type IptablesMode } from '../agent/dataplane/linux/backend.ts';
import { LinuxDataplane, type HookPosition } from '../agent/dataplane/linux/dataplane.ts';
import { ExecRunner, type KernelRunner } from '../agent/dataplane/linux/runner.ts';
import { ShellRunner } from '../agent/dataplane/linux/shell-runner.ts';
import { netnsPrefix } from '../agent/dataplane/linux/netns.ts';
import type { Dataplane } from '../agent/dataplane/dataplane.ts';
import { chooseBackend, parseDataplaneFlag, type DataplaneFlag } from '../agent/dataplane/choose.ts';
import { HandoverDataplane } from '../agent/dataplane/handover.ts';
import { probeNftables } from '../agent/dataplane/nftables/backend.ts';
import { createNftablesDataplane, NftablesDataplane } from '../agent/dataplane/nftables/dataplane.ts';
import { windowsDataplaneFromEnv } from '../agent/dataplane/windows/from-env.ts';
import { agentMetrics } from '../agent/metrics.ts';
import { NodeAgent } from '../agent/node-agent.ts';
import { serveHttp } from '../runtime/http.ts';
import { enforcedRoute } from '../agent/enforced-route.ts';
import { createLogger, type Logger } from '../runtime/log.ts';
import { loadClusterAccess } from '../agent/kube/access.ts';
import { KubeTransport } from '../agent/kube/transport.ts';

export interface AgentOptions {
  nodeName: string;
  kubeconfig?: string;
  /** Run every kernel tool inside this network namespace (the sandbox's simulated nodes). */
  netns?: string;
  metricsPort: number;
  metricsHost?: string;
  driftSeconds: number;
  hookPosition: HookPosition;
  iptablesMode: 'auto' | IptablesMode;
  /** auto, iptables (ipset/iptables; "linux" too), nftables, or windows (HNS ACLs); default: windows on Windows, auto elsewhere. */
  dataplane?: DataplaneFlag;
  log?: Logger;
}

export interface RunningAgent { agent: NodeAgent; stop(): Promise<void>; metricsPort?: number }

export function linuxDataplane(opts: Pick<AgentOptions, 'netns' | 'hookPosition' | 'iptablesMode'>, runner?: KernelRunner): LinuxDataplane {
  runner ??= new ShellRunner(netnsPrefix(opts.netns), { netns: opts.netns });
  return new LinuxDataplane({ runner, hookPosition: opts.hookPosition, tools: opts.iptablesMode === 'auto' ? undefined : toolsFor(opts.iptablesMode) });
}

export interface ChosenDataplane { dataplane: Dataplane; name: 'iptables' | 'nftables' | 'windows'; reason: string }

/**
 * The dataplane `--dataplane` names (tests run the Windows one on Linux). On Linux the other one
 * is removed once the chosen one first applies, if it holds anything: a node switched between
 * them would otherwise keep the old rules dropping.
 */
export async function pickDataplane(opts: Pick<AgentOptions, 'netns' | 'hookPosition' | 'iptablesMode' | 'dataplane'>, registry?: Registry, log?: Logger): Promise<ChosenDataplane> {
  const flag = opts.dataplane ?? (process.platform === 'win32' ? 'windows' : 'auto');
  if (flag === 'windows') return { dataplane: windowsDataplaneFromEnv(registry), name: 'windows', reason: '--dataplane windows' };
  // One-off calls (the probe, removing the other dataplane) spawn a process each; only the chosen dataplane keeps a shell.
  const once = new ExecRunner(netnsPrefix(opts.netns));
  const probe = await probeNftables(once);
  const { backend, reason } = chooseBackend(flag, probe);
  if (backend === 'nftables') {
    const iptables = linuxDataplane(opts, once);
    const current = createNftablesDataplane({ netns: opts.netns, log });
    return { dataplane: new HandoverDataplane(current, { name: 'iptables', dataplane: iptables, holdsState: () => iptables.holdsState() }, log), name: backend, reason };
  }
  const current = linuxDataplane(opts);
  if (!probe.available) return { dataplane: current, name: backend, reason };
  const nft = new NftablesDataplane({ runner: once, log });
  return { dataplane: new HandoverDataplane(current, { name: 'nftables', dataplane: nft, holdsState: async () => (await nft.read()) !== undefined }, log), name: backend, reason };
}

export async function startAgent(opts: AgentOptions): Promise<RunningAgent> {
  const log = opts.log ?? createLogger('fencer-agent').child({ node: opts.nodeName });
  const transport = new KubeTransport(loadClusterAccess(opts.kubeconfig));
  const metrics = agentMetrics();
  const chosen = await pickDataplane(opts, metrics.registry, log);
  const dataplane = chosen.dataplane;
  log.info({ dataplane: chosen.name, reason: chosen.reason }, 'dataplane chosen');
  metrics.dataplane.set({ dataplane: chosen.name }, 1);
  const sharedSets = new SharedSetCache();
  const agent = new NodeAgent({
    nodeName: opts.nodeName, agentName: `fencer-agent@${hostname()}`, dataplane,
    statusWriter: new CpsStatusWriter(transport), metrics, log, driftIntervalMs: opts.driftSeconds * 1000, sharedSets,
  });
  const setInformers = sharedSetInformers(transport, opts.nodeName, log);
  for (const { selector, informer } of setInformers) {
    informer.onChange((type, shard) => {
      if (sharedSets.apply(selector, type, shard)) void agent.offerSets();
    });
  }
  const informer = ownCpsInformer(transport, opts.nodeName, log);
  informer.onChange((type, cps) => void agent.offer(type === 'delete' ? undefined : cps));
  let server: Server | undefined;
  if (opts.metricsPort >= 0) {
    server = await serveHttp(opts.metricsPort, {
      '/node-metrics': async () => ({ status: 200, type: metrics.registry.contentType, body: await metrics.registry.metrics() }),
      '/healthz': () => ({ status: agent.healthy() ? 200 : 503, body: agent.healthy() ? 'ok\n' : 'degraded\n' }),
      '/enforced': enforcedRoute(agent),
    }, opts.metricsHost);
  }
  agent.prepare();
  // Sets first: the spec that names them then finds them whole and applies at once.
  await Promise.all(setInformers.map((s) => s.informer.start()));
  await informer.start();
  agent.start();
  log.info({ metricsPort: opts.metricsPort }, 'agent started');
  const address = server?.address();
  return {
    agent,
    metricsPort: typeof address === 'object' && address ? address.port : undefined,
    async stop() {
      await informer.stop();
      await Promise.all(setInformers.map((s) => s.informer.stop()));
      await agent.stop();
      await dataplane.close?.();
      transport.close();
      // Held /enforced answers would keep close() waiting.
      server?.closeAllConnections();
      await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
    },
  };
}

export function registerAgentCommand(program: Command): void {
  program.command('agent')
    .description("enforce this node's CompiledPolicySet (nftables, ipset/iptables, or HNS on Windows)")
    .option('--node <name>', 'node name (default: $NODE_NAME)', process.env.NODE_NAME)
    .option('--kubeconfig <path>', 'kubeconfig (default: in-cluster or $KUBECONFIG)')
    .option('--netns <name>', 'run kernel tools inside this network namespace')
    .option('--metrics-port <port>', 'port of /node-metrics and /healthz (0: any free port, -1: none)', (v) => Number(v), 10091)
    .option('--metrics-host <addr>', 'address to serve /node-metrics and /healthz on (default: every address)')
    .option('--drift-seconds <s>', 'how often to verify the kernel still holds the enforced state (0: never)', (v) => Number(v), 10)
    .option('--hook-position <where>', 'FORWARD jump position: after-kube-services or first', 'after-kube-services')
    .option('--iptables-mode <mode>', 'auto, nft or legacy', 'auto')
    .option('--dataplane <kind>', 'auto, iptables (ipset/iptables), nftables, or windows (HNS ACLs); auto picks nftables where kube-proxy or Fencer already uses it (default: windows on Windows, auto elsewhere)', parseDataplaneFlag)
    .option('--cleanup', 'remove every chain, jump, set and table Fencer owns (both Linux dataplanes), then exit')
    .action(async (o: { node?: string; kubeconfig?: string; netns?: string; metricsPort: number; metricsHost?: string; driftSeconds: number; hookPosition: HookPosition; iptablesMode: 'auto' | IptablesMode; dataplane?: DataplaneFlag; cleanup?: boolean }) => {
      if (o.cleanup) {
        const { dataplane } = await pickDataplane(o);
        await dataplane.cleanup();
        await dataplane.close?.();
        console.log('removed every chain, jump and set Fencer owns');
        return;
      }
      if (!o.node) throw new Error('the node name is required: --node NAME or $NODE_NAME');
      const running = await startAgent({ ...o, nodeName: o.node });
      let stopping: Promise<void> | undefined;
      // Listeners that stay: a library's signal-exit re-raises a signal nobody else listens to.
      const shutdown = () => void (stopping ??= running.stop().then(() => process.exit(0)));
      process.on('SIGTERM', shutdown);
      process.on('SIGINT', shutdown);
    });
}
