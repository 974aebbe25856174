// A continuous probe loop with a fine time resolution: one prober process per source pod
// (flow-prober.ts, inside the pod's netns) starts a real TCP connect or UDP echo to each of its flows
// every `everyMs`, attempts overlapping; every attempt is judged against what the flow must be the
// whole time (open, closed, or either while it changes). A wrong state that stands for longer than
// `everyMs` is seen, where a loop of one-shot probe processes sees one round per second or so.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { NODE_BIN } from '../../netns/ip.ts';
import { track, untrack, type SyncDestroyable } from '../../netns/lifecycle.ts';
import type { PodHandle } from '../../netns/topology.ts';

const PROBER = fileURLToPath(new URL('./flow-prober.ts', import.meta.url));

export interface ContinuousFlow {
  name: string;
  from: PodHandle;
  to: { ip: string };
  protocol: 'TCP' | 'UDP';
  port: number;
  /** open: allowed by every state the test goes through; closed: denied by every one; any: changes. */
  expect: 'open' | 'closed' | 'any';
}

export interface ContinuousStats {
  /** Attempts that ended (in-flight ones at stop() are not counted). */
  sent: number;
  failed: number;
  /** Flows expected closed seen open: what must never happen. */
  opened: number;
  /** Flows expected open seen closed. */
  closed: number;
  /** Attempts per flow. */
  perFlow: Record<string, number>;
  /** The first failures (wall-clock ms of the attempt's start). */
  failures: Array<{ at: number; flow: string; observed: boolean }>;
  /** How often each `any` flow was seen open / closed. */
  seen: Record<string, { open: number; closed: number }>;
  /** Milliseconds the loop ran. */
  ms: number;
}

export class ContinuousLoop implements SyncDestroyable {
  private readonly flows: ContinuousFlow[];
  private readonly everyMs: number;
  private readonly timeoutMs: number;
  private readonly children: Array<{ child: ChildProcess; exited: Promise<void> }> = [];
  /** Verdicts of the `any` flows in start order, to tell when a flow changed. */
  private readonly timelines = new Map<string, Array<{ at: number; open: boolean }>>();
  /** Later expectations of a flow, each for the attempts started from `since` on. */
  private readonly phases = new Map<string, Array<{ since: number; expect: ContinuousFlow['expect'] }>>();
  private startedAt = 0;
  private stoppedAt = 0;
  private stopping = false;
  readonly stats: ContinuousStats = { sent: 0, failed: 0, opened: 0, closed: 0, perFlow: {}, failures: [], seen: {}, ms: 0 };

  constructor(flows: ContinuousFlow[], opts: { everyMs?: number; timeoutMs?: number } = {}) {
    this.flows = flows;
    this.everyMs = opts.everyMs ?? 50;
    this.timeoutMs = opts.timeoutMs ?? 1000;
  }

  start(): this {
    this.startedAt = Date.now();
    const bySource = new Map<PodHandle, ContinuousFlow[]>();
    for (const f of this.flows) bySource.set(f.from, [...(bySource.get(f.from) ?? []), f]);
    for (const [src, flows] of bySource) {
      const arg = JSON.stringify({ everyMs: this.everyMs, timeoutMs: this.timeoutMs, targets: flows.map((f) => ({ ip: f.to.ip, protocol: f.protocol, port: f.port })) });
      const child = spawn('ip', ['netns', 'exec', src.netns, NODE_BIN, PROBER, arg], { stdio: ['ignore', 'pipe', 'inherit'] });
      child.once('error', () => undefined);
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      createInterface({ input: child.stdout! }).on('line', (line) => {
        if (this.stopping) return;
        const [index, at, ok] = line.split(' ');
        this.judge(flows[Number(index)], Number(at), ok === '1');
      });
      this.children.push({ child, exited });
    }
    track(this);
    return this;
  }

  /** From `since` (wall-clock ms, default now) on, the flow must be `expect` (a cluster change the test made and saw enforced). */
  expect(flow: string, expect: ContinuousFlow['expect'], since = Date.now()): void {
    if (!this.flows.some((f) => f.name === flow)) throw new Error(`no flow ${flow}`);
    const list = this.phases.get(flow) ?? [];
    list.push({ since, expect });
    this.phases.set(flow, list.sort((a, b) => a.since - b.since));
  }

  private expectation(f: ContinuousFlow, at: number): ContinuousFlow['expect'] {
    return this.phases.get(f.name)?.findLast((p) => p.since <= at)?.expect ?? f.expect;
  }

  private judge(f: ContinuousFlow, at: number, open: boolean): void {
    const s = this.stats;
    s.sent++;
    s.perFlow[f.name] = (s.perFlow[f.name] ?? 0) + 1;
    const expect = this.expectation(f, at);
    if (expect === 'any') {
      const seen = (s.seen[f.name] ??= { open: 0, closed: 0 });
      if (open) seen.open++;
      else seen.closed++;
      let timeline = this.timelines.get(f.name);
      if (!timeline) this.timelines.set(f.name, (timeline = []));
      timeline.push({ at, open });
      return;
    }
    if (open === (expect === 'open')) return;
    s.failed++;
    if (open) s.opened++;
    else s.closed++;
    if (s.failures.length < 50) s.failures.push({ at, flow: f.name, observed: open });
  }

  /**
   * Wall-clock ms of the start of the first attempt of an `any` flow that saw `open`, after which
   * no attempt saw the other verdict (undefined when it never settled on `open`).
   */
  settledAt(flow: string, open: boolean): number | undefined {
    const timeline = [...(this.timelines.get(flow) ?? [])].sort((a, b) => a.at - b.at);
    const lastOther = timeline.findLastIndex((a) => a.open !== open);
    return timeline[lastOther + 1]?.at;
  }

  /** Stops every prober; what they report after this is not counted. */
  async stop(): Promise<ContinuousStats> {
    if (!this.stopping) {
      this.stopping = true;
      this.stoppedAt = Date.now();
      for (const { child } of this.children) child.kill('SIGTERM');
      await Promise.all(this.children.map((c) => c.exited));
      untrack(this);
      this.stats.ms = this.stoppedAt - this.startedAt;
    }
    return this.stats;
  }

  destroySync(): void {
    for (const { child } of this.children) child.kill('SIGKILL');
  }
}
