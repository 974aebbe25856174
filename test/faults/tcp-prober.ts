// A long-lived TCP prober inside a pod's network namespace, for measuring how long a flow is open:
// one process answers connect probes sent over stdin, so a probe costs a connect, not a process
// start (Topology.probe starts one process per call). Each probe is a new connection (a NEW
// conntrack entry), judged by the rules as they are at that moment.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { NODE_BIN } from '../../netns/ip.ts';

const SCRIPT = `
const net = require('node:net');
require('node:readline').createInterface({ input: process.stdin }).on('line', (line) => {
  const { id, ip, port, timeoutMs } = JSON.parse(line);
  const sock = net.connect({ host: ip, port });
  let done = false;
  const finish = (open) => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    sock.destroy();
    process.stdout.write(JSON.stringify({ id, open }) + '\\n');
  };
  const timer = setTimeout(() => finish(false), timeoutMs);
  sock.once('connect', () => finish(true));
  sock.once('error', () => finish(false));
});
process.stdout.write('{"ready":true}\\n');
`;

export interface Observation { at: number; open: boolean }

export class TcpProber {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly pending = new Map<number, (open: boolean) => void>();
  private next = 0;

  private constructor(child: ChildProcessWithoutNullStreams) {
    this.child = child;
  }

  static async start(netns: string): Promise<TcpProber> {
    const child = spawn('ip', ['netns', 'exec', netns, NODE_BIN, '-e', SCRIPT], { stdio: ['pipe', 'pipe', 'pipe'] });
    child.stderr.resume();
    const prober = new TcpProber(child);
    await new Promise<void>((resolve, reject) => {
      const lines = createInterface({ input: child.stdout });
      lines.on('line', (line) => {
        const msg = JSON.parse(line) as { ready?: true; id?: number; open?: boolean };
        if (msg.ready) return resolve();
        prober.pending.get(msg.id!)?.(msg.open!);
        prober.pending.delete(msg.id!);
      });
      child.once('exit', (code) => {
        reject(new Error(`prober in ${netns} exited (${code})`));
        for (const r of prober.pending.values()) r(false);
        prober.pending.clear();
      });
    });
    return prober;
  }

  probe(ip: string, port: number, timeoutMs: number): Promise<boolean> {
    const id = this.next++;
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      this.child.stdin.write(`${JSON.stringify({ id, ip, port, timeoutMs })}\n`);
    });
  }

  close(): void {
    this.child.kill('SIGKILL');
  }
}

/** One flow probed back to back (a new connection every `everyMs` at most) until stopped. */
export class FlowWatch {
  readonly observations: Observation[] = [];
  private running?: Promise<void>;
  private stopping = false;

  private readonly prober: TcpProber;
  private readonly ip: string;
  private readonly port: number;
  private readonly timeoutMs: number;
  private readonly everyMs: number;

  constructor(prober: TcpProber, ip: string, port: number, timeoutMs = 150, everyMs = 20) {
    this.prober = prober;
    this.ip = ip;
    this.port = port;
    this.timeoutMs = timeoutMs;
    this.everyMs = everyMs;
  }

  start(): this {
    this.running = (async () => {
      while (!this.stopping) {
        const at = Date.now();
        const open = await this.prober.probe(this.ip, this.port, this.timeoutMs);
        this.observations.push({ at, open });
        const left = this.everyMs - (Date.now() - at);
        if (left > 0) await new Promise((r) => setTimeout(r, left));
      }
    })();
    return this;
  }

  async stop(): Promise<Observation[]> {
    this.stopping = true;
    await this.running;
    return this.observations;
  }
}
