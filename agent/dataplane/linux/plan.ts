// Pure planning: from the desired spec and the kernel's current state to the smallest safe change.
// - members: rules unchanged, only set members differ → one `ipset restore -exist`, adds before
//   deletes, so every intermediate set lies between old ∩ new and old ∪ new under unchanged rules:
//   no flow that both generations deny is ever allowed.
// - rules: changed sets are built complete under their other name, then one iptables-restore
//   writes the whole chain tree under the other generation's names and inserts the goto to it ahead
//   of the old one: the switch is atomic and deletes nothing. The old generation's chains, and then
//   the sets nothing references any more, are removed after the apply reports (`cleanup`).
import type { CompiledPolicySetSpec } from '../../../crds/types.ts';
import { madeSet, referencedSets, sameChains, type KernelSet, type KernelState } from './kernel-state.ts';
import { sameList } from '../../../runtime/same-list.ts';
import { CHAIN_FORWARD, CHAIN_TOP, PREFIX, chainGeneration, chainName, setNames, type Generation } from './names.ts';
import { desiredChains, desiredSets, type DesiredSet } from './translate.ts';

export const IPSET_MAXELEM = 1048576;

export interface Plan {
  kind: 'noop' | 'members' | 'rules';
  /**
   * `iptables-restore --noflush` payload run first when the kernel holds chains the live tree does
   * not reach (a crash between a switch and its cleanup): sets they reference could not be replaced.
   */
  tidy: string;
  /** `ipset restore` payload applied next. */
  ipset: string;
  /** Undoes `ipset` when a later step fails. */
  ipsetRollback: string;
  /** `iptables-restore --noflush` payload, empty when rules are unchanged. */
  iptables: string;
  /** `iptables-restore --noflush` payload removing the previous generation, run after the apply reports. */
  cleanup: string;
  /** Sets to destroy once no rule references them (after `cleanup`). */
  destroyAfter: string[];
  counts: { rules: number; sets: number; entries: number };
  /** Fencer's part of the kernel once the plan and its cleanup are applied (FORWARD is left as read). */
  after: KernelState;
}

/** The generation FENCER-FORWARD's first rule goes to; undefined when it goes nowhere Fencer knows. */
export function liveGeneration(chains: Map<string, string[]>): Generation | undefined {
  const first = chains.get(CHAIN_FORWARD)?.[0];
  const to = first ? / -g (\S+)$/.exec(first)?.[1] : undefined;
  if (to === CHAIN_TOP) return 0;
  if (to === chainName(CHAIN_TOP, 1)) return 1;
  return undefined;
}

/**
 * What the live tree does not reach: chains of the other generation, and FENCER-FORWARD's rules
 * after its first. Without a live tree, only generation-1 chains are judged (a tree written before
 * generations existed uses generation-0 names and may still be enforced).
 */
export function planTidy(kernel: KernelState): { iptables: string; after: KernelState } | undefined {
  const live = liveGeneration(kernel.chains);
  const stale = [...kernel.chains.keys()].filter((c) => c !== CHAIN_FORWARD && chainGeneration(c) !== (live ?? 0)).sort();
  const root = kernel.chains.get(CHAIN_FORWARD) ?? [];
  const extraRoot = live !== undefined && root.length > 1;
  if (stale.length === 0 && !extraRoot) return undefined;
  const lines = ['*filter'];
  // Flushing FENCER-FORWARD and adding its first rule back is one atomic step.
  if (extraRoot) lines.push(`:${CHAIN_FORWARD} - [0:0]`, root[0]);
  lines.push(...removal(stale), 'COMMIT');
  const chains = new Map([...kernel.chains].filter(([c]) => !stale.includes(c)));
  if (extraRoot) chains.set(CHAIN_FORWARD, [root[0]]);
  return { iptables: joinLines(lines), after: { ...kernel, chains } };
}

export interface PlanOptions {
  /**
   * Rewrite the live generation in place instead of switching (legacy iptables: its commits replace
   * the whole table and never wait for the kernel, so a switch would only double the work).
   */
  inPlace?: boolean;
}

export function planApply(spec: CompiledPolicySetSpec, read: KernelState, opts: PlanOptions = {}): Plan {
  const tidy = planTidy(read);
  const kernel = tidy?.after ?? read;
  const live = liveGeneration(kernel.chains);
  const sets = desiredSets(spec);
  const inUse = referencedSets(kernel.chains);
  const find = (id: string) => setNames(id).find((n) => inUse.has(n) && kernel.sets.has(n));
  const current = new Map(sets.map((s) => [s.id, find(s.id)]));
  const currentName = (id: string) => (current.has(id) ? current.get(id) : find(id));
  // Whether the kernel set already holds a desired set's members: asked by several steps, computed once.
  const sameCache = new Map<string, boolean>();
  const holds = (s: DesiredSet, have: KernelSet | undefined): boolean => {
    if (!have || have.type !== s.type) return false;
    let same = sameCache.get(have.name);
    if (same === undefined) sameCache.set(have.name, (same = sameMembers(have, s.members)));
    return same;
  };
  const counts = (chains: Map<string, string[]>) => ({
    rules: [...chains.values()].reduce((n, l) => n + l.length, 0),
    sets: sets.length,
    entries: sets.reduce((n, s) => n + s.members.length, 0),
  });

  const keepNames = sets.every((s) => currentName(s.id) && kernel.sets.get(currentName(s.id)!)!.type === s.type);
  if (keepNames && live !== undefined) {
    const chains = desiredChains(spec, (id) => currentName(id)!, live);
    if (sameChains(kernel.chains, chains)) {
      const garbage = unreferencedSets(kernel, new Set(sets.map((s) => currentName(s.id)!)));
      const changed = sets.filter((s) => !holds(s, kernel.sets.get(currentName(s.id)!)));
      const { apply, rollback } = memberChanges(changed.map((s) => ({ set: s, kernel: kernel.sets.get(currentName(s.id)!)!, name: currentName(s.id)! })));
      const kind = apply === '' && garbage.length === 0 && !tidy ? 'noop' : 'members';
      const after = afterState(kernel, sets, (id) => currentName(id)!, chains, holds);
      return { kind, tidy: tidy?.iptables ?? '', ipset: apply, ipsetRollback: rollback, iptables: '', cleanup: '', destroyAfter: garbage, counts: counts(chains), after };
    }
  }

  const names = new Map<string, string>();
  const build: string[] = [];
  const rollback: string[] = [];
  for (const s of sets) {
    const cur = currentName(s.id);
    if (cur && holds(s, kernel.sets.get(cur))) {
      names.set(s.id, cur);
      continue;
    }
    const [base, alt] = setNames(s.id);
    const fresh = cur === base ? alt : base;
    names.set(s.id, fresh);
    // A leftover under the fresh name (a crash mid-apply) is unreferenced: replace it.
    if (kernel.sets.has(fresh)) build.push(`destroy ${fresh}`);
    build.push(`create ${fresh} ${s.type} family inet hashsize 1024 maxelem ${IPSET_MAXELEM}`);
    for (const m of s.members) build.push(`add ${fresh} ${m}`);
    rollback.push(`destroy ${fresh}`);
  }
  const generation: Generation = opts.inPlace ? (live ?? 0) : live === 0 ? 1 : 0;
  const chains = desiredChains(spec, (id) => names.get(id)!, generation);
  const { iptables, cleanup } = renderSwitch(chains, kernel, live, generation);
  return {
    kind: 'rules',
    tidy: tidy?.iptables ?? '',
    ipset: joinLines(build),
    ipsetRollback: joinLines(rollback),
    iptables,
    cleanup,
    destroyAfter: unreferencedSets(kernel, new Set(names.values())),
    counts: counts(chains),
    after: afterState(kernel, sets, (id) => names.get(id)!, chains, holds),
  };
}

/**
 * The switch to `generation`'s tree and the cleanup of the old one. With a live tree (the common
 * case) the switch only adds: the new chains, and the goto inserted as FENCER-FORWARD's first rule.
 * Otherwise (first apply, a kernel Fencer did not leave, or a rewrite in place) FENCER-FORWARD is
 * rewritten, and chains under the written names that the tree does not use are deleted, in the same
 * transaction.
 */
function renderSwitch(chains: Map<string, string[]>, kernel: KernelState, live: Generation | undefined, generation: Generation): { iptables: string; cleanup: string } {
  const goto = chains.get(CHAIN_FORWARD)![0];
  const insert = live !== undefined && live !== generation && kernel.chains.get(CHAIN_FORWARD)!.length === 1;
  const written = [...chains.keys()].filter((c) => !(insert && c === CHAIN_FORWARD));
  const stale = [...kernel.chains.keys()].filter((c) => c !== CHAIN_FORWARD && chainGeneration(c) === generation && !chains.has(c)).sort();
  const lines = ['*filter'];
  for (const chain of written) lines.push(`:${chain} - [0:0]`);
  for (const chain of written) lines.push(...chains.get(chain)!);
  if (insert) lines.push(goto.replace(`-A ${CHAIN_FORWARD} `, `-I ${CHAIN_FORWARD} 1 `));
  lines.push(...removal(stale), 'COMMIT');
  const old = [...kernel.chains.keys()].filter((c) => c !== CHAIN_FORWARD && chainGeneration(c) !== generation).sort();
  const cleanup = insert || old.length ? ['*filter', ...(insert ? [`:${CHAIN_FORWARD} - [0:0]`, goto] : []), ...removal(old), 'COMMIT'] : [];
  return { iptables: joinLines(lines), cleanup: joinLines(cleanup) };
}

/** Restore lines deleting chains: each is flushed first (declaring it with --noflush flushes it). */
function removal(chains: string[]): string[] {
  return [...chains.map((c) => `:${c} - [0:0]`), ...chains.map((c) => `-X ${c}`)];
}

function afterState(kernel: KernelState, sets: DesiredSet[], name: (id: string) => string, chains: Map<string, string[]>, holds: (s: DesiredSet, have: KernelSet | undefined) => boolean): KernelState {
  const after = new Map(sets.map((s) => {
    const n = name(s.id);
    const have = kernel.sets.get(n);
    // An unchanged set is shared with the state read before; building 100k-entry Sets anew costs more than the apply.
    // A set read from the kernel learns the list it holds, so the next change compares lists in order.
    return [n, have && holds(s, have) ? (have.source ? have : { ...have, source: s.members }) : madeSet(n, s.type, s.members)];
  }));
  return { sets: after, chains, forward: kernel.forward };
}

/** Deletes the given Fencer chains in one transaction (the agent's cleanup on removal). */
export function renderChainRemoval(chains: string[]): string {
  return joinLines(['*filter', ...removal([...chains].sort()), 'COMMIT']);
}

function memberChanges(items: Array<{ set: DesiredSet; kernel: KernelSet; name: string }>): { apply: string; rollback: string } {
  const adds: string[] = [];
  const dels: string[] = [];
  for (const item of items) {
    const { set, name } = item;
    const kernel = item.kernel.members;
    let missing = 0;
    for (const m of set.members) if (!kernel.has(m)) { adds.push(`${name} ${m}`); missing++; }
    // Equal sizes and nothing missing: equal sets, no need to look for extra kernel members.
    if (missing === 0 && kernel.size === set.members.length) continue;
    const want = new Set(set.members);
    for (const m of kernel) if (!want.has(m)) dels.push(`${name} ${m}`);
  }
  return {
    apply: joinLines([...adds.map((a) => `add ${a}`), ...dels.map((d) => `del ${d}`)]),
    rollback: joinLines([...dels.map((d) => `add ${d}`), ...adds.map((a) => `del ${a}`)]),
  };
}

function unreferencedSets(kernel: KernelState, keep: Set<string>): string[] {
  return [...kernel.sets.keys()].filter((n) => n.startsWith(PREFIX) && !keep.has(n)).sort();
}

function sameMembers(have: KernelSet, want: string[]): boolean {
  // The operator emits members in a fixed order, so an unchanged list compares equal in order.
  if (have.source) return sameList(have.source, want);
  return have.members.size === want.length && want.every((m) => have.members.has(m));
}

function joinLines(lines: string[]): string {
  return lines.length ? `${lines.join('\n')}\n` : '';
}
