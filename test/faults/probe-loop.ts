// A continuous probe loop between pods of a sandbox: real TCP connects, round after round, each flow
// judged against what it must be the whole time (open, closed, or either while it changes).
import type { PodHandle, Topology } from '../../netns/topology.ts';

export interface LoopFlow {
  name: string;
  from: PodHandle;
  to: { ip: string };
  port: number;
  /** open: allowed by every state the test goes through; closed: denied by every one; any: changes. */
  expect: 'open' | 'closed' | 'any';
}

export interface LoopFailure { at: number; flow: string; observed: boolean }

export interface LoopStats {
  rounds: number;
  sent: number;
  failed: number;
  /** Flows expected closed that were seen open: what must never happen. */
  opened: number;
  /** Flows expected open that were seen closed. */
  closed: number;
  errors: number;
  failures: LoopFailure[];
  /** How often each `any` flow was seen open / closed. */
  seen: Record<string, { open: number; closed: number }>;
}

export class ProbeLoop {
  private readonly topology: Topology;
  private readonly flows: LoopFlow[];
  private readonly timeoutMs: number;
  private running?: Promise<void>;
  private stopping = false;
  readonly stats: LoopStats = { rounds: 0, sent: 0, failed: 0, opened: 0, closed: 0, errors: 0, failures: [], seen: {} };

  constructor(topology: Topology, flows: LoopFlow[], timeoutMs = 300) {
    this.topology = topology;
    this.flows = flows;
    this.timeoutMs = timeoutMs;
  }

  start(): this {
    this.stopping = false;
    this.running = (async () => {
      while (!this.stopping) await this.round();
    })();
    return this;
  }

  async stop(): Promise<LoopStats> {
    this.stopping = true;
    await this.running;
    return this.stats;
  }

  /** One round now (also usable without start()). */
  async round(): Promise<void> {
    const bySource = new Map<PodHandle, LoopFlow[]>();
    for (const f of this.flows) bySource.set(f.from, [...(bySource.get(f.from) ?? []), f]);
    await Promise.all([...bySource].map(async ([src, flows]) => {
      let results: boolean[];
      try {
        results = await this.topology.probe(src, flows.map((f) => ({ ip: f.to.ip, protocol: 'TCP', port: f.port })), this.timeoutMs);
      } catch {
        this.stats.errors++;
        return;
      }
      const at = Date.now();
      flows.forEach((f, i) => {
        const open = results[i];
        this.stats.sent++;
        if (f.expect === 'any') {
          const s = (this.stats.seen[f.name] ??= { open: 0, closed: 0 });
          if (open) s.open++;
          else s.closed++;
          return;
        }
        if (open === (f.expect === 'open')) return;
        this.stats.failed++;
        if (open) this.stats.opened++;
        else this.stats.closed++;
        if (this.stats.failures.length < 50) this.stats.failures.push({ at, flow: f.name, observed: open });
      });
    }));
    this.stats.rounds++;
  }
}
