// One simulated node's agent as its own `fencer agent --netns` process, as on a real node: agents
// then apply and talk to the apiserver in parallel instead of taking turns on one event loop.
// Each runs in its own process group (a stop takes the kernel tools it is running with it); it is
// killed at once if this process exits or is told to stop by a signal (netns/lifecycle.ts), and
// by a watchdog if this process dies without a chance to (SIGKILL).
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { freePort } from '../netns/free-port.ts';
import { NODE_BIN } from '../netns/ip.ts';
import { track, untrack, type SyncDestroyable } from '../netns/lifecycle.ts';

const MAIN = fileURLToPath(new URL('../cli/main.ts', import.meta.url));

const WATCHDOG = `
while kill -0 "$1" 2>/dev/null; do kill -0 "$2" 2>/dev/null || exit 0; sleep 1; done
kill -KILL -- "-$2" 2>/dev/null
`;

export interface AgentProcessOptions {
  node: string;
  netns: string;
  kubeconfig: string;
  driftSeconds: number;
  /** FENCER_LOG_LEVEL of the process; its JSON log goes to this process's stdout. */
  logLevel: string;
  /** `--dataplane` of the agent (default: auto). */
  dataplane?: string;
}

export class AgentProcess implements SyncDestroyable {
  readonly node: string;
  readonly metricsPort: number;
  private readonly child: ChildProcess;
  private readonly watchdog: ChildProcess;
  private readonly exited: Promise<void>;
  private done = false;

  private constructor(node: string, metricsPort: number, child: ChildProcess, watchdog: ChildProcess) {
    this.node = node;
    this.metricsPort = metricsPort;
    this.child = child;
    this.watchdog = watchdog;
    this.exited = new Promise((resolve) => child.once('exit', () => {
      this.done = true;
      resolve();
    }));
  }

  static async start(o: AgentProcessOptions): Promise<AgentProcess> {
    const metricsPort = await freePort();
    const child = spawn(NODE_BIN, [
      MAIN, 'agent', '--node', o.node, '--netns', o.netns, '--kubeconfig', o.kubeconfig, '--metrics-port', String(metricsPort),
      '--metrics-host', '127.0.0.1', '--drift-seconds', String(o.driftSeconds), '--hook-position', 'first', '--iptables-mode', 'auto',
      ...(o.dataplane ? ['--dataplane', o.dataplane] : []),
    ], { detached: true, stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, FENCER_LOG_LEVEL: o.logLevel } });
    // A spawn that fails reports it as an 'error' event; unhandled, it would take the sandbox down.
    child.once('error', () => undefined);
    if (child.pid === undefined) throw new Error(`could not start the agent of ${o.node}`);
    // bash, not sh: dash's kill cannot signal a process group.
    const watchdog = spawn('bash', ['-c', WATCHDOG, 'bash', String(process.pid), String(child.pid)], { detached: true, stdio: 'ignore' });
    watchdog.unref();
    const agent = new AgentProcess(o.node, metricsPort, child, watchdog);
    track(agent);
    return agent;
  }

  alive(): boolean {
    return !this.done;
  }

  /** SIGTERM (the agent finishes its apply and exits), SIGKILL of the whole group after graceMs. */
  async stop(graceMs = 5000): Promise<void> {
    const pid = this.child.pid!;
    signalGroup(pid, 'SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.exited, new Promise<void>((r) => (timer = setTimeout(r, graceMs)))]);
    clearTimeout(timer);
    // Also after a clean exit: nothing of its group may stay.
    signalGroup(pid, 'SIGKILL');
    await this.exited;
    this.watchdog.kill('SIGKILL');
    untrack(this);
  }

  /** On exit or a signal: no waiting possible, so everything goes at once. */
  destroySync(): void {
    signalGroup(this.child.pid!, 'SIGKILL');
    this.watchdog.kill('SIGKILL');
  }
}

function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // already gone
  }
}
