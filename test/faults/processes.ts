// `fencer agent` and `fencer operator` as real processes, each in its own process group, so a test can
// SIGKILL one together with the kernel tools it is running (as a container kill does) and restart it.
// Every group still alive when the test process exits is killed.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { freePort } from '../../netns/free-port.ts';
import { descendantGroups } from './process-tree.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
export const NODE = `${root}node_modules/node/bin/node`;
const MAIN = `${root}cli/main.ts`;

const groups = new Set<number>();
let hooked = false;
function killAllSync(): void {
  for (const pgid of groups) {
    for (const g of new Set([pgid, ...descendantGroups(pgid)])) {
      try { process.kill(-g, 'SIGKILL'); } catch { /* gone */ }
    }
  }
  groups.clear();
}

export interface FencerProcess {
  readonly pid: number;
  readonly logFile: string;
  readonly metricsPort: number;
  /** Resolves with the exit code (or 128+n for a signal) when the process ends. */
  readonly exited: Promise<number>;
  alive(): boolean;
  /** Signals the process group; SIGKILL ends every descendant too (the agent's tool shell and the tool it runs), as a container kill does. */
  kill(signal?: NodeJS.Signals): Promise<number>;
  /** SIGTERM, then SIGKILL after graceMs. */
  stop(graceMs?: number): Promise<number>;
  log(): string;
  metrics(path: string): Promise<string>;
}

export function spawnFencer(args: string[], opts: { logFile: string; metricsPort: number; env?: NodeJS.ProcessEnv }): FencerProcess {
  if (!hooked) {
    hooked = true;
    process.on('exit', killAllSync);
  }
  const out = openSync(opts.logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(NODE, [MAIN, ...args], { detached: true, stdio: ['ignore', out, out], env: { ...process.env, ...opts.env } });
  } finally {
    closeSync(out);
  }
  const pid = child.pid!;
  groups.add(pid);
  let done = false;
  const exited = new Promise<number>((resolve) => child.once('exit', (code, signal) => {
    done = true;
    // The group may still hold children (a tool the process was running): they go too.
    try { process.kill(-pid, 'SIGKILL'); } catch { /* gone */ }
    groups.delete(pid);
    resolve(code ?? 128 + (signal ? ({ SIGKILL: 9, SIGTERM: 15, SIGINT: 2 } as Record<string, number>)[signal] ?? 0 : 0));
  }));
  const signalGroup = (signal: NodeJS.Signals) => {
    try { process.kill(-pid, signal); } catch { /* gone */ }
  };
  // Stopped first, so it starts nothing new while its descendants are found; then every group they are in dies at once.
  const killTree = () => {
    signalGroup('SIGSTOP');
    for (const g of done ? [] : descendantGroups(pid)) {
      try { process.kill(-g, 'SIGKILL'); } catch { /* gone */ }
    }
    signalGroup('SIGKILL');
  };
  return {
    pid,
    logFile: opts.logFile,
    metricsPort: opts.metricsPort,
    exited,
    alive: () => !done,
    async kill(signal = 'SIGKILL') {
      if (signal === 'SIGKILL') killTree();
      else signalGroup(signal);
      return exited;
    },
    async stop(graceMs = 5000) {
      signalGroup('SIGTERM');
      const timer = setTimeout(killTree, graceMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
    log: () => readFileSync(opts.logFile, 'utf8'),
    async metrics(path) {
      const res = await fetch(`http://127.0.0.1:${opts.metricsPort}${path}`, { signal: AbortSignal.timeout(3000) });
      return res.text();
    },
  };
}

export interface AgentProcessOptions {
  node: string;
  netns: string;
  kubeconfig: string;
  logFile: string;
  metricsPort?: number;
  driftSeconds?: number;
  /** PATH for the process (a shim in front of the kernel tools). */
  path?: string;
  /** `--dataplane` (default: the agent's own, auto). */
  dataplane?: 'iptables' | 'nftables';
}

export async function spawnAgent(o: AgentProcessOptions): Promise<FencerProcess> {
  const metricsPort = o.metricsPort ?? (await freePort());
  return spawnFencer([
    'agent', '--node', o.node, '--netns', o.netns, '--kubeconfig', o.kubeconfig,
    '--metrics-port', String(metricsPort), '--metrics-host', '127.0.0.1', '--drift-seconds', String(o.driftSeconds ?? 0), '--hook-position', 'first',
    ...(o.dataplane ? ['--dataplane', o.dataplane] : []),
  ], { logFile: o.logFile, metricsPort, env: { ...(o.path ? { PATH: o.path } : {}), FENCER_LOG_LEVEL: 'info' } });
}

export interface OperatorProcessOptions {
  kubeconfig: string;
  identity: string;
  namespace: string;
  leaseName: string;
  logFile: string;
  metricsPort?: number;
}

export async function spawnOperator(o: OperatorProcessOptions): Promise<FencerProcess> {
  const metricsPort = o.metricsPort ?? (await freePort());
  return spawnFencer([
    'operator', '--kubeconfig', o.kubeconfig, '--identity', o.identity, '--namespace', o.namespace, '--lease-name', o.leaseName,
    '--metrics-port', String(metricsPort), '--metrics-host', '127.0.0.1', '--coalesce-ms', '50',
  ], { logFile: o.logFile, metricsPort });
}

/** A counter or gauge from Prometheus text, summed over the series matching `labels`. */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) sum += Number(m[3]);
  }
  return sum;
}
