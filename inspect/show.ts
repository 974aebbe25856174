// `fencer show NODE`, the pure part: a node's CompiledPolicySet as readable tables.
import type { CompiledPolicySetSpec, IPSet, Target } from '../crds/types.ts';
import { CHAIN_EGRESS, CHAIN_INGRESS, setNames, targetChain } from '../agent/dataplane/linux/names.ts';
import type { NodeEnforcement } from './explain.ts';
import { enforcementLine } from './explain-text.ts';
import { table } from './table.ts';
import { describePeers, plural, portsColumn, type Direction } from './wording.ts';

export function formatSpec(spec: CompiledPolicySetSpec, enforcement?: NodeEnforcement): string {
  const sets = new Map(spec.ipSets.map((s) => [s.name, s]));
  const c = spec.counts;
  const lines = [
    `CompiledPolicySet ${spec.nodeName}  (content hash ${spec.contentHash.replace(/^sha256:/, '').slice(0, 12)})`,
    `  ${plural(c.policies, 'policy', 'policies')}, ${plural(c.pods, 'isolated pod')}, ${plural(spec.targets.length, 'target')}, ${plural(c.rules, 'rule')}, ${plural(c.sets, 'set')}, ${plural(c.entries, 'set entry', 'set entries')}; pod CIDRs: ${spec.podCIDRs.join(', ') || 'none'}`,
  ];
  if (enforcement) lines.push(`  ${enforcementLine(enforcement)}`);
  if (spec.targets.length === 0) {
    lines.push('', 'No policy selects a pod on this node: nothing is isolated, everything is allowed.');
  }
  if (spec.ipSets.length) {
    lines.push('', 'SETS (a set rebuilt together with its rules carries the suffix -1 in the kernel until the next rebuild)');
    lines.push(...table(['KERNEL NAME', 'KIND', 'MEMBERS', 'ORIGIN'], spec.ipSets.map((s) => [kernelName(s), kindWord(s), String(memberCount(s)), s.origin]), '  '));
  }
  spec.targets.forEach((t, i) => lines.push('', ...formatTarget(t, i, sets)));
  if (spec.diagnostics.length) {
    lines.push('', 'DIAGNOSTICS (the compiler could not honour these in full; it failed closed)');
    for (const d of spec.diagnostics) lines.push(`  ${d.policy}: ${d.message}`);
  }
  return `${lines.join('\n')}\n`;
}

function formatTarget(t: Target, i: number, sets: Map<string, IPSet>): string[] {
  const members = sets.get(t.podSet)?.members ?? [];
  const out = [
    `TARGET ${i + 1} (${t.podSet}): ${t.pods.join(', ')}`,
    `  addresses: ${members.join(', ') || 'none'}`,
    `  selected by: ${t.policies.join(', ')}`,
  ];
  for (const direction of ['ingress', 'egress'] as const) {
    const rules = t[direction]?.rules;
    const dispatch = direction === 'ingress' ? CHAIN_INGRESS : CHAIN_EGRESS;
    if (!rules) {
      out.push(`  ${direction}: not isolated (no policy selects these pods for ${direction})`);
      continue;
    }
    out.push(`  ${direction}: isolated; chain ${targetChain(direction, t.podSet)} (from ${dispatch}); rules in order, then default deny`);
    if (rules.length === 0) {
      out.push('    no rules: all ' + direction + ' is denied');
      continue;
    }
    out.push(...table(['#', 'POLICY', 'RULE', peerHeader(direction), 'PORTS'], rules.map((r, n) => [
      String(n + 1), r.policy, `${direction}[${r.index}]`, describePeers(r, direction, sets).replace(/^(from|to) /, ''), portsColumn(r, sets),
    ]), '    '));
  }
  return out;
}

function peerHeader(direction: Direction): string {
  return direction === 'ingress' ? 'FROM' : 'TO';
}

/** Pod groups are dispatched by address in FENCER-INGRESS/EGRESS and have no kernel set. */
function kernelName(s: IPSet): string {
  return s.name.startsWith('t-') ? 'none (by address)' : setNames(s.name)[0];
}

function memberCount(s: IPSet): number | string {
  return s.membersGzip ? 'compressed' : s.members.length;
}

function kindWord(s: IPSet): string {
  return s.kind === 'ipPort' ? 'ip,port' : s.kind;
}
