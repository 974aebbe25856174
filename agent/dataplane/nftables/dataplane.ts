// Applies CompiledPolicySet specs to Fencer's own nftables table: reads the table, plans the
// smallest change and commits it with one `nft -f` (commit.ts). A failed commit changes nothing
// (the kernel aborts the whole transaction), so there is nothing to roll back; a failed change is
// retried at once as a whole-table replacement, which does not depend on what the table holds.
import type { CompiledPolicySetSpec } from '../../../crds/types.ts';
import type { Logger } from '../../../runtime/log.ts';
import type { Dataplane, DataplaneOutcome } from '../dataplane.ts';
import type { KernelRunner } from '../linux/runner.ts';
import { ShellRunner } from '../linux/shell-runner.ts';
import { netnsPrefix } from '../linux/netns.ts';
import { commitScript } from './commit.ts';
import { parseNftJson, type LiveState } from './live-state.ts';
import { TABLE_REF } from './names.ts';
import { planNft } from './plan.ts';
import { REMOVE_TABLE, renderTable } from './render.ts';
import { NftSession, sessionLine } from './session.ts';
import { desiredState } from './translate.ts';

/** How old a read taken ahead of the first apply may be; older ones are read again. */
const READ_AHEAD_MAX_AGE_MS = 2000;

export interface NftablesDataplaneOptions {
  runner: KernelRunner;
  /** Member-only changes that fit one line go through it; without one, every change is an `nft -f`. */
  session?: NftSession;
  log?: Logger;
}

export class NftApplyError extends Error {
  readonly step: string;
  constructor(step: string, cause: Error) {
    super(`${step}: ${cause.message}`);
    this.step = step;
  }
}

export class NftablesDataplane implements Dataplane {
  private readonly runner: KernelRunner;
  private readonly session?: NftSession;
  private readonly log?: Logger;
  /**
   * The table after our last successful apply, or after a clean drift check; dropped on any
   * failure. Trusting it makes a one-member change one `nft -f` and no read.
   */
  private known?: LiveState;
  /** Moves when an apply starts and when it ends: a drift check that overlapped one stores nothing. */
  private applies = 0;
  private reading?: Promise<{ live: LiveState | undefined; at: number } | undefined>;

  constructor(opts: NftablesDataplaneOptions) {
    this.runner = opts.runner;
    this.session = opts.session;
    this.log = opts.log;
  }

  /** The table as the kernel holds it; undefined when there is none. */
  async read(): Promise<LiveState | undefined> {
    const r = await this.runner.run('nft', ['-j', 'list', 'table', ...TABLE_REF.split(' ')]);
    if (r.exitCode !== 0 && /No such file or directory/.test(r.stderr)) return undefined;
    if (r.exitCode !== 0) throw new NftApplyError('nft list table', new Error(r.stderr.trim() || `exit ${r.exitCode}`));
    return parseNftJson(r.stdout);
  }

  /**
   * Reads the table while the agent's watch lists, so the first apply pays only for writing. A
   * stale read is safe: a plan built on it deletes an element that is gone or flushes a chain that
   * is not there, the commit fails whole and the table is replaced whole instead; what it misses,
   * the drift check finds.
   */
  prepare(): Promise<void> {
    this.reading ??= this.read().then((live) => ({ live, at: performance.now() }), () => undefined);
    return this.reading.then(() => undefined);
  }

  async apply(spec: CompiledPolicySetSpec): Promise<DataplaneOutcome> {
    this.applies++;
    try {
      return await this.applyNow(spec);
    } finally {
      this.applies++;
    }
  }

  private async applyNow(spec: CompiledPolicySetSpec): Promise<DataplaneOutcome> {
    const desired = desiredState(spec);
    const ahead = await this.reading;
    this.reading = undefined;
    const recent = ahead && performance.now() - ahead.at < READ_AHEAD_MAX_AGE_MS ? ahead : undefined;
    const live = this.known ?? (recent ? recent.live : await this.read());
    this.known = undefined;
    const plan = planNft(desired, live);
    // One transaction writes sets and rules alike; its time is reported where the agent's metrics
    // expect the kind of change it made: a member change as set time (ipsetMs), a rule change as
    // rule time (iptablesMs, also observed as the restore latency).
    const outcome: DataplaneOutcome = { kind: plan.kind, counts: plan.counts, ipsetMs: 0, iptablesMs: 0 };
    if (plan.script) {
      if (live && plan.whole) this.log?.info({ reasons: plan.differences.slice(0, 5) }, 'replacing the nftables table whole');
      const started = performance.now();
      try {
        await this.commit(plan);
      } catch (e) {
        if (plan.whole) throw new NftApplyError('nft -f', e as Error);
        // The table is not what the plan took it for (changed since it was read or trusted, or a
        // rule altered by hand that kept its comment): the whole-table script assumes nothing
        // about it, so one apply never fails twice for the same stale view.
        this.log?.warn({ err: (e as Error).message }, 'nft -f of the change failed; replacing the table whole');
        try {
          await commitScript(this.runner, renderTable(desired));
        } catch (again) {
          throw new NftApplyError('nft -f', again as Error);
        }
        outcome.kind = 'rules';
      }
      const ms = performance.now() - started;
      if (outcome.kind === 'rules') outcome.iptablesMs = ms;
      else outcome.ipsetMs = ms;
    }
    this.known = plan.after;
    return outcome;
  }

  /** A member-only change through the session when it fits one line (falling back to `nft -f` if the session fails); anything else with `nft -f`. */
  private async commit(plan: ReturnType<typeof planNft>): Promise<void> {
    const line = this.session && plan.kind === 'members' ? sessionLine(plan.changes) : undefined;
    if (line) {
      try {
        return await this.session!.commit(line);
      } catch (e) {
        // Refused by the kernel: the same change through nft -f would be refused too, and the caller replaces the table.
        if (/^nft refused/.test((e as Error).message)) throw e;
        this.log?.warn({ err: (e as Error).message }, 'the nft session failed; committing with nft -f');
      }
    }
    await commitScript(this.runner, plan.script);
  }

  /** What applying would change now; empty when the table holds exactly the spec. */
  async drift(spec: CompiledPolicySetSpec): Promise<string[]> {
    this.known = undefined;
    const applies = this.applies;
    const plan = planNft(desiredState(spec), await this.read());
    // The table just read holds the spec exactly: the next apply plans against it without reading.
    if (plan.kind === 'noop' && applies === this.applies) this.known = plan.after;
    return plan.differences;
  }

  /** Deletes Fencer's table, and nothing else. */
  async cleanup(): Promise<void> {
    this.known = undefined;
    await commitScript(this.runner, REMOVE_TABLE);
  }

  /** Forgets the trusted table: the next apply reads the kernel. */
  forget(): void {
    this.known = undefined;
  }

  async close(): Promise<void> {
    await this.session?.close();
    await this.runner.close?.();
  }
}

export interface CreateNftablesOptions {
  /** Run nft inside this network namespace (the sandbox's simulated nodes). */
  netns?: string;
  /** Defaults to one long-lived shell (decisions.md 11), under `ip netns exec` with `netns`. */
  runner?: KernelRunner;
  log?: Logger;
}

/** The agent's nftables dataplane, set up as cli/agent.ts sets up the iptables one. */
export function createNftablesDataplane(opts: CreateNftablesOptions = {}): NftablesDataplane {
  const prefix = netnsPrefix(opts.netns);
  const runner = opts.runner ?? new ShellRunner(prefix, { netns: opts.netns });
  return new NftablesDataplane({ runner, session: opts.runner ? undefined : new NftSession(prefix, { netns: opts.netns }), log: opts.log });
}
