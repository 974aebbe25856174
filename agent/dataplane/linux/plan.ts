// Pure planning: from the desired spec and the kernel's current state to the smallest safe change.
// - members: rules unchanged, only set members differ → one `ipset restore -exist`, adds before
//   deletes, so every intermediate set lies between old ∩ new and old ∪ new under unchanged rules:
//   no flow that both generations deny is ever allowed.
// - rules: changed sets are built complete under their other name, then one iptables-restore
//   switches every chain at once; sets no longer referenced are destroyed afterwards.
import type { CompiledPolicySetSpec } from '../../../crds/types.ts';
import { madeSet, referencedSets, sameChains, type KernelSet, type KernelState } from './kernel-state.ts';
import { sameList } from '../../../runtime/same-list.ts';
import { PREFIX, setNames } from './names.ts';
import { desiredChains, desiredSets, type DesiredSet } from './translate.ts';

export const IPSET_MAXELEM = 1048576;

export interface Plan {
  kind: 'noop' | 'members' | 'rules';
  /** `ipset restore` payload applied first. */
  ipset: string;
  /** Undoes `ipset` when a later step fails. */
  ipsetRollback: string;
  /** `iptables-restore --noflush` payload, empty when rules are unchanged. */
  iptables: string;
  /** Sets to destroy once no rule references them. */
  destroyAfter: string[];
  counts: { rules: number; sets: number; entries: number };
  /** Fencer's part of the kernel once the plan is applied (FORWARD is left as read). */
  after: KernelState;
}

export function planApply(spec: CompiledPolicySetSpec, kernel: KernelState): Plan {
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
  if (keepNames) {
    const chains = desiredChains(spec, (id) => currentName(id)!);
    if (sameChains(kernel.chains, chains)) {
      const garbage = unreferencedSets(kernel, new Set(sets.map((s) => currentName(s.id)!)));
      const changed = sets.filter((s) => !holds(s, kernel.sets.get(currentName(s.id)!)));
      const { apply, rollback } = memberChanges(changed.map((s) => ({ set: s, kernel: kernel.sets.get(currentName(s.id)!)!, name: currentName(s.id)! })));
      const kind = apply === '' && garbage.length === 0 ? 'noop' : 'members';
      const after = afterState(kernel, sets, (id) => currentName(id)!, chains, holds);
      return { kind, ipset: apply, ipsetRollback: rollback, iptables: '', destroyAfter: garbage, counts: counts(chains), after };
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
  const chains = desiredChains(spec, (id) => names.get(id)!);
  return {
    kind: 'rules',
    ipset: joinLines(build),
    ipsetRollback: joinLines(rollback),
    iptables: renderIptablesRestore(chains, [...kernel.chains.keys()]),
    destroyAfter: unreferencedSets(kernel, new Set(names.values())),
    counts: counts(chains),
    after: afterState(kernel, sets, (id) => names.get(id)!, chains, holds),
  };
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

/** Rewrites every Fencer chain in one transaction and deletes the chains no longer wanted. */
export function renderIptablesRestore(chains: Map<string, string[]>, existing: string[]): string {
  const stale = existing.filter((c) => !chains.has(c)).sort();
  const lines = ['*filter'];
  // Declaring a chain with --noflush flushes it; stale chains are flushed before their deletion.
  for (const chain of [...chains.keys(), ...stale]) lines.push(`:${chain} - [0:0]`);
  for (const ruleLines of chains.values()) lines.push(...ruleLines);
  for (const chain of stale) lines.push(`-X ${chain}`);
  lines.push('COMMIT');
  return joinLines(lines);
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
