// Applies CompiledPolicySet specs to the kernel: reads the live state, plans the smallest safe
// change, applies it with restore transactions, and rolls back what it did if a step fails.
import type { CompiledPolicySetSpec } from '../../../crds/types.ts';
import type { Dataplane } from '../dataplane.ts';
import { detectIptables, type IptablesTools } from './backend.ts';
import { forwardJumpIndex, parseIpsetSave, parseIptablesSave, type KernelState } from './kernel-state.ts';
import { CHAIN_FORWARD, FORWARD_JUMP, PREFIX } from './names.ts';
import { planApply, renderChainRemoval, type Plan } from './plan.ts';
import { runChecked, type KernelRunner } from './runner.ts';

/** How old a read taken ahead of the first apply may be; older ones are read again. */
const READ_AHEAD_MAX_AGE_MS = 2000;

export type HookPosition = 'after-kube-services' | 'first';

export interface LinuxDataplaneOptions {
  runner: KernelRunner;
  tools?: IptablesTools;
  hookPosition?: HookPosition;
  /** Waits between attempts to destroy a set the kernel still holds (tests shorten it). */
  sleep?: (ms: number) => Promise<void>;
}

export interface ApplyOutcome {
  kind: Plan['kind'];
  counts: Plan['counts'];
  ipsetMs: number;
  iptablesMs: number;
}

export class ApplyError extends Error {
  readonly step: string;
  constructor(step: string, cause: Error) {
    super(`${step}: ${cause.message}`);
    this.step = step;
  }
}

export class LinuxDataplane implements Dataplane {
  private readonly runner: KernelRunner;
  private readonly hookPosition: HookPosition;
  private readonly sleep: (ms: number) => Promise<void>;
  private tools?: IptablesTools;
  /** What the kernel held after our last successful apply; dropped on any failure or drift. */
  private known?: KernelState;
  /** Moves when an apply starts and when it ends: a drift check that overlapped one stores nothing. */
  private applies = 0;
  /** The previous generation's chains and the sets the last apply stopped using, being removed. */
  private destroying?: Promise<void>;
  /** A read started by prepare(), taken by the first apply if it is recent (the watch may take long to list). */
  private reading?: Promise<{ kernel: KernelState; at: number } | undefined>;

  constructor(opts: LinuxDataplaneOptions) {
    this.runner = opts.runner;
    this.tools = opts.tools;
    this.hookPosition = opts.hookPosition ?? 'after-kube-services';
    this.sleep = opts.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
  }

  async iptables(): Promise<IptablesTools> {
    this.tools ??= await detectIptables(this.runner);
    return this.tools;
  }

  async readKernel(): Promise<KernelState> {
    const t = await this.iptables();
    const [save, ipset] = await Promise.all([
      runChecked(this.runner, t.save, ['-t', 'filter']),
      runChecked(this.runner, 'ipset', ['save']),
    ]);
    return { ...parseIptablesSave(save), sets: parseIpsetSave(ipset) };
  }

  /**
   * Reads the kernel ahead of the first apply: the agent calls it while its watch lists, so the
   * first apply pays only for writing. A stale read is safe: a plan built on it fails as a whole
   * (rolled back) and the retry reads again; a missed removal is found by the drift check.
   */
  prepare(): Promise<void> {
    this.reading ??= this.readKernel().then((kernel) => ({ kernel, at: performance.now() }), () => undefined);
    return this.reading.then(() => undefined);
  }

  /** What applying would change now; empty when the kernel holds exactly the spec (drift check). */
  async drift(spec: CompiledPolicySetSpec): Promise<string[]> {
    await this.settled();
    this.known = undefined;
    const applies = this.applies;
    const kernel = await this.readKernel();
    const plan = planApply(spec, kernel, { inPlace: (await this.iptables()).mode === 'legacy' });
    const out: string[] = [];
    if (!this.hookInPlace(kernel)) out.push('the FORWARD jump to FENCER-FORWARD is missing or misplaced');
    if (plan.kind === 'rules') out.push('Fencer chains or set names differ from the spec');
    if (plan.tidy) out.push('chains the live tree does not reach are left over');
    if (plan.kind === 'members' && plan.ipset) out.push(`set members differ (${plan.ipset.split('\n').length - 1} changes)`);
    // A set whose destroy failed after its last rule went (the kernel held it a while) stays until an apply plans it again.
    if (plan.kind !== 'rules' && plan.destroyAfter.length) out.push(`sets no rule references are left over: ${plan.destroyAfter.join(', ')}`);
    // The kernel just read holds the spec exactly: the next apply can plan against it without reading again.
    if (out.length === 0 && plan.kind === 'noop' && applies === this.applies) this.known = plan.after;
    return out;
  }

  async apply(spec: CompiledPolicySetSpec): Promise<ApplyOutcome> {
    await this.settled();
    this.applies++;
    try {
      return await this.applyNow(spec);
    } finally {
      this.applies++;
    }
  }

  private async applyNow(spec: CompiledPolicySetSpec): Promise<ApplyOutcome> {
    const t = await this.iptables();
    const early = this.reading;
    this.reading = undefined;
    const ahead = await early;
    const recent = ahead && performance.now() - ahead.at < READ_AHEAD_MAX_AGE_MS ? ahead.kernel : undefined;
    const kernel = this.known ?? recent ?? (await this.readKernel());
    this.known = undefined;
    const plan = planApply(spec, kernel, { inPlace: t.mode === 'legacy' });
    const outcome: ApplyOutcome = { kind: plan.kind, counts: plan.counts, ipsetMs: 0, iptablesMs: 0 };
    let started = performance.now();
    if (plan.tidy) {
      try {
        await runChecked(this.runner, t.restore, ['-w', '--noflush'], plan.tidy);
      } catch (e) {
        throw new ApplyError('iptables-restore (left-over chains)', e as Error);
      }
    }
    if (plan.ipset) await this.step('ipset restore', () => runChecked(this.runner, 'ipset', ['restore', ...(plan.kind === 'members' ? ['-exist'] : [])], plan.ipset), plan);
    outcome.ipsetMs = performance.now() - started;
    started = performance.now();
    const hook = this.hookChanges(kernel);
    if (plan.iptables) {
      // The jump goes into the same transaction as the chains it points to.
      const payload = plan.iptables.replace(/COMMIT\n$/, `${hook.rules.map(restoreLine).join('')}COMMIT\n`);
      await this.step('iptables-restore', () => runChecked(this.runner, t.restore, ['-w', '--noflush'], payload), plan);
    } else {
      await this.step('FORWARD hook', () => this.ensureHook(kernel, t, hook.rules), plan);
    }
    outcome.iptablesMs = performance.now() - started;
    // Trusting our own last apply makes a one-member change cost one `ipset restore`; drift checks
    // still read the kernel, and any failure drops this cache.
    this.known = { ...plan.after, forward: hook.forward };
    this.removeLater(plan.cleanup, plan.destroyAfter);
    return outcome;
  }

  /** Resolves once the last apply's cleanup (previous generation's chains, unused sets) has run. */
  async settled(): Promise<void> {
    await this.destroying;
  }

  /**
   * The new rules are enforced once iptables-restore commits; deleting the previous generation's
   * chains and then the sets nothing references any more is cleanup (each commit that deletes waits
   * for the kernel, 10–50 ms on a busy node), so it runs after the apply reports. Every kernel step
   * waits for it first; if any of it fails, what we trust is dropped, so the next apply reads the
   * kernel and plans the removal again.
   */
  private removeLater(chains: string, sets: string[]): void {
    if (!chains && sets.length === 0) return;
    const remove = async (): Promise<string[]> => {
      if (chains) await runChecked(this.runner, (await this.iptables()).restore, ['-w', '--noflush'], chains);
      return this.destroySets(sets);
    };
    this.destroying = remove()
      .then((left) => left.length > 0, () => true)
      .then((failed) => {
        if (failed) this.known = undefined;
        this.destroying = undefined;
      });
  }

  /** Whether the kernel holds any chain, jump or set of Fencer's (false when iptables cannot be run at all). */
  async holdsState(): Promise<boolean> {
    await this.settled();
    let kernel: KernelState;
    try {
      kernel = await this.readKernel();
    } catch {
      return false;
    }
    return kernel.chains.size > 0 || forwardJumpIndex(kernel.forward) >= 0 || [...kernel.sets.keys()].some((n) => n.startsWith(PREFIX));
  }

  /** Removes every chain, jump and set Fencer owns, and nothing else. */
  async cleanup(): Promise<void> {
    await this.settled();
    const t = await this.iptables();
    const kernel = await this.readKernel();
    for (let i = 0; i < kernel.forward.filter((l) => l.includes(`-j ${CHAIN_FORWARD}`)).length; i++) {
      await runChecked(this.runner, t.iptables, ['-w', '-D', 'FORWARD', ...FORWARD_JUMP]);
    }
    if (kernel.chains.size) await runChecked(this.runner, t.restore, ['-w', '--noflush'], renderChainRemoval([...kernel.chains.keys()]));
    const left = await this.destroySets([...kernel.sets.keys()].filter((n) => n.startsWith(PREFIX)));
    if (left.length) throw new Error(`could not destroy sets still in use: ${left.join(', ')}`);
  }

  private async step(name: string, fn: () => Promise<unknown>, plan: Plan): Promise<void> {
    try {
      await fn();
    } catch (e) {
      // Undo this apply's set changes; the previous generation's rules never stopped being enforced.
      if (plan.ipsetRollback) await this.runner.run('ipset', ['restore', '-exist'], plan.ipsetRollback);
      throw new ApplyError(name, e as Error);
    }
  }

  async close(): Promise<void> {
    await this.settled();
    await this.runner.close?.();
  }

  /** Forgets the cached kernel state: the next apply reads the kernel. */
  forget(): void {
    this.known = undefined;
  }

  private hookInPlace(kernel: KernelState): boolean {
    const at = forwardJumpIndex(kernel.forward);
    if (at < 0 || !kernel.chains.has(CHAIN_FORWARD)) return false;
    if (this.hookPosition === 'first') return at === 0;
    const kubeServices = kernel.forward.findIndex((l) => l.includes('-j KUBE-SERVICES'));
    return kubeServices < 0 || at === kubeServices + 1;
  }

  /** The FORWARD changes that put the jump in place (none when it is), and FORWARD afterwards. */
  private hookChanges(kernel: KernelState): { rules: string[][]; forward: string[] } {
    if (this.hookInPlace(kernel)) return { rules: [], forward: kernel.forward };
    const rules: string[][] = [];
    const forward = [...kernel.forward];
    const at = forwardJumpIndex(forward);
    if (at >= 0) {
      rules.push(['-D', 'FORWARD', ...FORWARD_JUMP]);
      forward.splice(at, 1);
    }
    const kubeServices = forward.findIndex((l) => l.includes('-j KUBE-SERVICES'));
    const position = this.hookPosition === 'first' || kubeServices < 0 ? 1 : kubeServices + 2;
    rules.push(['-I', 'FORWARD', String(position), ...FORWARD_JUMP]);
    forward.splice(position - 1, 0, `-A FORWARD ${FORWARD_JUMP.join(' ')}`);
    return { rules, forward };
  }

  /** Puts the jump in place with plain iptables calls (when no restore transaction runs anyway). */
  private async ensureHook(kernel: KernelState, t: IptablesTools, rules: string[][]): Promise<void> {
    if (rules.length === 0) return;
    if (!kernel.chains.has(CHAIN_FORWARD)) await runChecked(this.runner, t.iptables, ['-w', '-N', CHAIN_FORWARD]);
    for (const args of rules) await runChecked(this.runner, t.iptables, ['-w', ...args]);
  }

  private async destroySets(names: string[]): Promise<string[]> {
    if (names.length === 0) return [];
    // One process for all of them; only if that fails (a set still held) go one by one.
    const batch = await this.runner.run('ipset', ['restore', '-exist'], names.map((n) => `destroy ${n}\n`).join(''));
    if (batch.exitCode === 0) return [];
    const left: string[] = [];
    for (const name of names) {
      let ok = false;
      // The kernel may hold a set briefly after the last rule using it is gone.
      for (let attempt = 0; attempt < 5 && !ok; attempt++) {
        const r = await this.runner.run('ipset', ['destroy', name]);
        ok = r.exitCode === 0 || /does not exist/.test(r.stderr);
        if (!ok) await this.sleep(20 * 2 ** attempt);
      }
      if (!ok) left.push(name);
    }
    return left;
  }
}


/** FORWARD_JUMP has no spaces or quotes, so its words go into a restore line as they are. */
function restoreLine(args: string[]): string {
  return `${args.join(' ')}\n`;
}
