// `fencer verify`, the pure part: every difference between what a node's kernel holds (ipsets and
// Fencer's iptables chains, as read back) and what its CompiledPolicySet asks for, in words that
// name the set, the rule (policy and index) or the chain concerned.
import type { CompiledPolicySetSpec, Rule } from '../crds/types.ts';
import { chainHashes, desiredChains, desiredSets } from '../agent/dataplane/linux/translate.ts';
import { forwardJumpIndex, referencedSets, type KernelState } from '../agent/dataplane/linux/kernel-state.ts';
import { CHAIN_FORWARD, PREFIX, setNames } from '../agent/dataplane/linux/names.ts';
import { liveGeneration, planTidy } from '../agent/dataplane/linux/plan.ts';
import { listSome } from './errors.ts';
import { describeRule, type Direction } from './wording.ts';

export interface KernelComparison {
  /** Differences that make the kernel enforce something other than the spec. */
  differences: string[];
  /** Harmless observations (sets left over from a previous generation). */
  notes: string[];
}

export type HookPosition = 'after-kube-services' | 'first';

export function compareKernel(spec: CompiledPolicySetSpec, read: KernelState, hookPosition: HookPosition = 'after-kube-services'): KernelComparison {
  const differences: string[] = [];
  const notes: string[] = [];
  // The previous generation's chains stay until the agent's cleanup after an apply: harmless, unreachable.
  const tidy = planTidy(read);
  const kernel = tidy?.after ?? read;
  if (tidy) {
    const left = [...read.chains.keys()].filter((c) => !kernel.chains.has(c)).sort();
    notes.push(`${left.length ? `chains ${listSome(left, 10)}` : `${CHAIN_FORWARD} rules after the first`} are left over from the previous generation (unreachable; the agent removes them after each change)`);
  }
  const generation = liveGeneration(kernel.chains) ?? 0;
  const origins = new Map(spec.ipSets.map((s) => [s.name, s.origin]));
  const inUse = referencedSets(kernel.chains);
  const names = new Map<string, string>();

  for (const want of desiredSets(spec)) {
    const candidates = setNames(want.id);
    const name = candidates.find((n) => inUse.has(n) && kernel.sets.has(n)) ?? candidates.find((n) => kernel.sets.has(n));
    const label = `set ${name ?? candidates[0]} (${origins.get(want.id)})`;
    names.set(want.id, name ?? candidates[0]);
    if (!name) {
      differences.push(`${label} is missing from the kernel`);
      continue;
    }
    const have = kernel.sets.get(name)!;
    if (have.type !== want.type) differences.push(`${label} has type ${have.type}; the spec wants ${want.type}`);
    const wanted = new Set(want.members);
    const missing = want.members.filter((m) => !have.members.has(m));
    const extra = [...have.members].filter((m) => !wanted.has(m)).sort();
    if (missing.length) differences.push(`${label}: ${missing.length} member${missing.length === 1 ? '' : 's'} missing: ${listSome(missing, 10)}`);
    if (extra.length) differences.push(`${label}: ${extra.length} member${extra.length === 1 ? '' : 's'} not in the spec: ${listSome(extra, 10)}`);
  }
  const wantedNames = new Set(names.values());
  for (const name of [...kernel.sets.keys()].sort()) {
    if (!name.startsWith(PREFIX) || wantedNames.has(name)) continue;
    if (inUse.has(name)) differences.push(`set ${name} is used by the kernel's rules but is not in the spec`);
    else notes.push(`set ${name} is left over (unused; the agent destroys it on its next change)`);
  }

  const chains = desiredChains(spec, (id) => names.get(id) ?? setNames(id)[0], generation);
  const labels = ruleLabels(spec);
  for (const [chain, lines] of chains) {
    const have = kernel.chains.get(chain);
    if (!have) {
      differences.push(`chain ${chain} (${chainPurpose(chain, spec)}) is missing from the kernel`);
      continue;
    }
    differences.push(...compareChain(chain, lines, have, labels));
  }
  for (const chain of [...kernel.chains.keys()].sort()) {
    if (!chains.has(chain)) differences.push(`chain ${chain} is in the kernel but not in the spec (${plural(kernel.chains.get(chain)!.length, 'rule')})`);
  }
  const hook = hookProblem(kernel, hookPosition);
  if (hook) differences.push(hook);
  return { differences, notes };
}

function compareChain(chain: string, want: string[], have: string[], labels: Map<string, string>): string[] {
  const out: string[] = [];
  const wantHashes = chainHashes(want);
  const haveHashes = chainHashes(have);
  const haveSet = new Set(haveHashes);
  const wantSet = new Set(wantHashes);
  want.forEach((line, i) => {
    if (!haveSet.has(wantHashes[i])) out.push(`chain ${chain}: rule missing: ${labelOf(line, labels)}\n    expected: ${line}`);
  });
  have.forEach((line, i) => {
    if (!wantSet.has(haveHashes[i])) out.push(`chain ${chain}: rule not in the spec: ${line}`);
  });
  if (out.length === 0 && wantHashes.join() !== haveHashes.join()) out.push(`chain ${chain}: the rules are all there but in a different order (or repeated)`);
  return out;
}

/** A kernel line's comment label ("fencer:<hash> <label>") in words. */
function labelOf(line: string, labels: Map<string, string>): string {
  const label = /--comment "?fencer:[0-9a-f]{16} ([^"]*)"?/.exec(line)?.[1] ?? '';
  return labels.get(label) ?? (label || 'an unlabelled rule');
}

function ruleLabels(spec: CompiledPolicySetSpec): Map<string, string> {
  const sets = new Map(spec.ipSets.map((s) => [s.name, s]));
  const out = new Map<string, string>([['tree', 'the goto to the live generation of the chain tree'], ['egress', 'the jump to FENCER-EGRESS'], ['ingress', 'the jump to FENCER-INGRESS']]);
  for (const t of spec.targets) {
    const pods = t.pods.join(', ');
    out.set(`default deny ${t.podSet}`, `the default deny of ${pods}`);
    for (const ip of sets.get(t.podSet)?.members ?? []) out.set(`${t.podSet} ${ip}`, `the dispatch of ${ip} (one of ${pods}) to its rules`);
    for (const direction of ['ingress', 'egress'] as Direction[]) {
      for (const r of t[direction]?.rules ?? []) out.set(r.id, `${describeRule(r as Rule, direction, sets)} (for ${pods})`);
    }
  }
  return out;
}

function chainPurpose(chain: string, spec: CompiledPolicySetSpec): string {
  if (chain === CHAIN_FORWARD) return 'the entry point';
  if (/^FENCER-TOP(-1)?$/.test(chain)) return 'egress, then ingress';
  if (/^FENCER-(IN|E)GRESS(-1)?$/.test(chain)) return 'dispatch by pod address';
  const m = /^FENCER-([IE])-([0-9a-f]{16})(-1)?$/.exec(chain);
  const t = m ? spec.targets.find((x) => x.podSet === `t-${m[2]}`) : undefined;
  return t ? `${m![1] === 'I' ? 'ingress' : 'egress'} rules of ${t.pods.join(', ')}` : 'a target';
}

function hookProblem(kernel: KernelState, position: HookPosition): string | undefined {
  const at = forwardJumpIndex(kernel.forward);
  if (at < 0) return `the FORWARD jump to ${CHAIN_FORWARD} is missing: no traffic reaches Fencer's rules`;
  if (position === 'first' && at !== 0) return `the FORWARD jump to ${CHAIN_FORWARD} is rule ${at + 1} of FORWARD; it should be the first`;
  const kubeServices = kernel.forward.findIndex((l) => l.includes('-j KUBE-SERVICES'));
  if (position === 'after-kube-services' && kubeServices >= 0 && at !== kubeServices + 1) {
    return `the FORWARD jump to ${CHAIN_FORWARD} is rule ${at + 1} of FORWARD; it should follow the KUBE-SERVICES jump (rule ${kubeServices + 1})`;
  }
  return undefined;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}
