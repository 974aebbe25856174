// Rule economy: iptables rules and ipsets per node, and the most rules one packet traverses
// (it must grow with the policies selecting the destination pod, not with all policies).
import { globSync } from 'node:fs';
import type { CompiledPolicySetSpec } from '../crds/types.ts';
import { desiredChains, desiredSets } from '../agent/dataplane/linux/translate.ts';
import { CHAIN_EGRESS, CHAIN_FORWARD, CHAIN_INGRESS, CHAIN_TOP, targetChain } from '../agent/dataplane/linux/names.ts';
import { PolicyCompiler } from '../operator/compile/compiler.ts';
import { desiredState } from '../agent/dataplane/nftables/translate.ts';
import { FORWARD_CHAIN } from '../agent/dataplane/nftables/names.ts';
import { loadScenario } from '../matrix/scenario.ts';
import { ScenarioWorld } from '../matrix/world.ts';
import { syntheticCluster, type SyntheticSize } from './synthetic.ts';

export interface EconomyRow { name: string; nodes: number; policies: number; rulesMax: number; setsMax: number; entriesMax: number; traversedMax: number; selectingMax: number; localPodsMax: number; nftTraversedMax: number }

/**
 * Rules a NEW packet walks on one node with the nftables dataplane, worst case: `forward`'s three,
 * then (after one map lookup each) the source pod's egress chain and the destination pod's ingress
 * chain. No term grows with the number of local pods.
 */
export function worstNftTraversal(spec: CompiledPolicySetSpec): number {
  const { chains } = desiredState(spec);
  const longest = (prefix: string) => Math.max(0, ...[...chains].filter(([name]) => name.startsWith(prefix)).map(([, rules]) => rules.length));
  return chains.get(FORWARD_CHAIN)!.length + longest('egress-') + longest('ingress-');
}

/** Rules a NEW packet walks on one node in the worst case: entry chains, dispatch, one target chain per direction. */
export function worstTraversal(spec: CompiledPolicySetSpec): { rules: number; selecting: number } {
  const chains = desiredChains(spec, (id) => id);
  const entry = chains.get(CHAIN_FORWARD)!.length + chains.get(CHAIN_TOP)!.length;
  let worst = 0;
  let selecting = 0;
  for (const t of spec.targets) {
    const walk = (dir: 'ingress' | 'egress', dispatch: string) => (t[dir] ? chains.get(dispatch)!.length + chains.get(targetChain(dir, t.podSet))!.length : chains.get(dispatch)!.length);
    const total = entry + walk('egress', CHAIN_EGRESS) + walk('ingress', CHAIN_INGRESS);
    if (total > worst) {
      worst = total;
      selecting = t.policies.length;
    }
  }
  return { rules: worst || entry + chains.get(CHAIN_EGRESS)!.length + chains.get(CHAIN_INGRESS)!.length, selecting };
}

function row(name: string, specs: Map<string, CompiledPolicySetSpec>, policies: number): EconomyRow {
  const per = [...specs.values()].map((s) => {
    const chains = desiredChains(s, (id) => id);
    const sets = desiredSets(s);
    const walk = worstTraversal(s);
    const localPods = new Set(s.targets.flatMap((t) => t.pods)).size;
    return { rules: [...chains.values()].reduce((n, l) => n + l.length, 0), sets: sets.length, entries: sets.reduce((n, x) => n + x.members.length, 0), traversed: walk.rules, selecting: walk.selecting, localPods, nft: worstNftTraversal(s) };
  });
  const max = (f: (p: (typeof per)[number]) => number) => Math.max(0, ...per.map(f));
  return { name, nodes: specs.size, policies, rulesMax: max((p) => p.rules), setsMax: max((p) => p.sets), entriesMax: max((p) => p.entries), traversedMax: max((p) => p.traversed), selectingMax: max((p) => p.selecting), localPodsMax: max((p) => p.localPods), nftTraversedMax: max((p) => p.nft) };
}

export function benchRuleEconomy(sizes: SyntheticSize[]): EconomyRow[] {
  const rows: EconomyRow[] = [];
  let scenarioWorst = { rules: 0, sets: 0, traversed: 0, nft: 0, localPods: 0 };
  for (const file of globSync('test/scenarios/*.yaml').sort()) {
    const scenario = loadScenario(file);
    const world = new ScenarioWorld(scenario);
    scenario.steps.forEach((s, i) => world.applyStep(s, `steps[${i}]`));
    const r = row(file, PolicyCompiler.compile(world.snapshot()), world.policies.size);
    scenarioWorst = { rules: Math.max(scenarioWorst.rules, r.rulesMax), sets: Math.max(scenarioWorst.sets, r.setsMax), traversed: Math.max(scenarioWorst.traversed, r.traversedMax), nft: Math.max(scenarioWorst.nft, r.nftTraversedMax), localPods: Math.max(scenarioWorst.localPods, r.localPodsMax) };
  }
  rows.push({ name: 'scenario suite (worst file)', nodes: 2, policies: 0, rulesMax: scenarioWorst.rules, setsMax: scenarioWorst.sets, entriesMax: 0, traversedMax: scenarioWorst.traversed, selectingMax: 0, localPodsMax: scenarioWorst.localPods, nftTraversedMax: scenarioWorst.nft });
  for (const size of sizes) {
    const specs = PolicyCompiler.compile(syntheticCluster(size));
    rows.push(row(`synthetic ${size.pods} pods`, specs, size.policies));
  }
  return rows;
}

export function ruleEconomyReport(rows: EconomyRow[]): string {
  return ['| workload | nodes | policies | selected local pods per node (max) | iptables rules per node (max) | ipsets (max) | set entries (max) | rules one packet traverses (max), iptables | policies selecting that pod | rules one packet traverses (max), nftables |', '|---|---|---|---|---|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.name} | ${r.nodes} | ${r.policies || '—'} | ${r.localPodsMax} | ${r.rulesMax} | ${r.setsMax} | ${r.entriesMax || '—'} | ${r.traversedMax} | ${r.selectingMax || '—'} | ${r.nftTraversedMax} |`)].join('\n');
}
