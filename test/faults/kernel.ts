// What a node's kernel holds, read from inside its network namespace, normalised for comparison;
// and what Fencer may have left behind there (temporary sets, stale chains, a missing hook).
import { execa } from 'execa';
import type { CompiledPolicySetSpec } from '../../crds/types.ts';
import { LinuxDataplane } from '../../agent/dataplane/linux/dataplane.ts';
import { parseIpsetSave, parseIptablesSave, referencedSets } from '../../agent/dataplane/linux/kernel-state.ts';
import { ExecRunner } from '../../agent/dataplane/linux/runner.ts';
import { planApply } from '../../agent/dataplane/linux/plan.ts';

async function inNetns(netns: string, cmd: string[], input?: string): Promise<string> {
  const r = await execa('ip', ['netns', 'exec', netns, ...cmd], { input, reject: false });
  if (r.exitCode !== 0) throw new Error(`${cmd.join(' ')} in ${netns}: ${String(r.stderr)}`);
  return String(r.stdout);
}

export { inNetns };

export interface KernelSnapshot { rules: string; sets: string }

/** iptables-save (every table, without comments and counters) and ipset save (sorted, without initval). */
export async function kernelSnapshot(netns: string): Promise<KernelSnapshot> {
  const [save, ipset] = await Promise.all([inNetns(netns, ['iptables-save']), inNetns(netns, ['ipset', 'save'])]);
  return {
    rules: save.split('\n').filter((l) => !l.startsWith('#')).map((l) => l.replace(/\[\d+:\d+\]/g, '[]')).join('\n'),
    sets: ipset.split('\n').map((l) => l.replace(/ initval 0x[0-9a-f]+/, '')).filter(Boolean).sort().join('\n'),
  };
}

/**
 * Everything wrong with a node's kernel state for `spec`: rules or members not as the spec says,
 * the FORWARD hook missing, Fencer sets no rule references (temporary `-1` sets of a killed apply).
 * Empty when the kernel holds exactly the spec and nothing more.
 */
export async function kernelProblems(netns: string, spec: CompiledPolicySetSpec, settleMs = 0): Promise<string[]> {
  // An agent destroys the sets an apply stopped using after it reports the apply: a caller checking
  // a converged node gives that a moment (settleMs); one looking for a fault right after it does not.
  const deadline = performance.now() + settleMs;
  for (;;) {
    const problems = await kernelProblemsNow(netns, spec);
    if (problems.length === 0 || performance.now() > deadline) return problems;
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function kernelProblemsNow(netns: string, spec: CompiledPolicySetSpec): Promise<string[]> {
  const [save, ipset] = await Promise.all([inNetns(netns, ['iptables-save', '-t', 'filter']), inNetns(netns, ['ipset', 'save'])]);
  const kernel = { ...parseIptablesSave(save), sets: parseIpsetSave(ipset) };
  const problems: string[] = [];
  const referenced = referencedSets(kernel.chains);
  const unreferenced = [...kernel.sets.keys()].filter((n) => !referenced.has(n));
  if (unreferenced.length) problems.push(`sets no rule references: ${unreferenced.join(', ')}`);
  const plan = planApply(spec, kernel);
  if (plan.kind === 'rules') problems.push('Fencer chains differ from the spec');
  if (plan.tidy) problems.push('chains of a previous generation are left over');
  if (plan.kind === 'members' && plan.ipset) problems.push(`set members differ: ${plan.ipset.trim().split('\n').slice(0, 3).join(' / ')}`);
  if (plan.destroyAfter.length) problems.push(`sets to destroy: ${plan.destroyAfter.join(', ')}`);
  const hook = kernel.forward.filter((l) => l.includes('-j FENCER-FORWARD'));
  if (hook.length !== 1) problems.push(`${hook.length} FORWARD jumps to FENCER-FORWARD`);
  const dp = new LinuxDataplane({ runner: new ExecRunner(['ip', 'netns', 'exec', netns]), hookPosition: 'first' });
  problems.push(...(await dp.drift(spec)).filter((d) => !problems.some((p) => p.startsWith(d.slice(0, 10)))));
  return problems;
}
