// `fencer status`, the pure part: one row per node saying whether its agent enforces the latest
// generation of its CompiledPolicySet, since when, and what is wrong if not.
import type { CompiledPolicySet } from '../crds/types.ts';
import type { NodeEnforcement } from './explain.ts';
import { table } from './table.ts';

export interface StatusRow {
  node: string;
  /** False when the node has no CompiledPolicySet, or its agent has not reported, or lags, or is degraded. */
  inSync: boolean;
  latest?: number;
  enforced?: number;
  since?: string;
  problem?: string;
}

/** What a CompiledPolicySet's status says about its node. */
export function enforcementOf(cps: CompiledPolicySet): NodeEnforcement {
  const status = cps.status ?? {};
  const conditions = status.conditions ?? [];
  const inSyncCond = conditions.find((c) => c.type === 'InSync');
  const degraded = conditions.find((c) => c.type === 'Degraded' && c.status === 'True');
  const latest = cps.metadata.generation;
  const reported = !!status.agent || status.observedGeneration !== undefined || !!status.appliedHash;
  const inSync = reported && inSyncCond?.status === 'True' && status.appliedHash === cps.spec.contentHash &&
    (latest === undefined || status.observedGeneration === latest);
  const out: NodeEnforcement = { node: cps.metadata.name, inSync, reported };
  if (latest !== undefined) out.latestGeneration = latest;
  if (status.observedGeneration !== undefined) out.enforcedGeneration = status.observedGeneration;
  if (reported && inSyncCond?.lastTransitionTime) out.since = inSyncCond.lastTransitionTime;
  if (degraded) out.problem = `${degraded.reason}: ${degraded.message}`;
  return out;
}

export function statusRows(nodes: string[], sets: CompiledPolicySet[]): StatusRow[] {
  const byNode = new Map(sets.map((c) => [c.metadata.name, c]));
  const names = [...new Set([...nodes, ...byNode.keys()])].sort();
  return names.map((node) => {
    const cps = byNode.get(node);
    if (!cps) return { node, inSync: false, problem: 'no CompiledPolicySet: the operator has not compiled this node (is it running?)' };
    const e = enforcementOf(cps);
    const row: StatusRow = { node, inSync: e.inSync };
    if (e.latestGeneration !== undefined) row.latest = e.latestGeneration;
    if (e.enforcedGeneration !== undefined) row.enforced = e.enforcedGeneration;
    if (e.since) row.since = e.since;
    const problems: string[] = [];
    if (!e.reported) problems.push('agent has not reported (is fencer-agent running on this node?)');
    else if (e.enforcedGeneration === undefined) problems.push('agent reported but enforces nothing yet');
    else if (!e.inSync && !e.problem) problems.push(`agent enforces generation ${e.enforcedGeneration}; generation ${e.latestGeneration ?? '?'} is pending`);
    if (e.problem) problems.push(e.problem);
    if (!nodes.includes(node) && nodes.length > 0) problems.push('the Node no longer exists (the operator deletes this CompiledPolicySet)');
    if (problems.length) row.problem = problems.join('; ');
    return row;
  });
}

export function formatStatus(rows: StatusRow[]): string {
  if (rows.length === 0) return 'no nodes and no CompiledPolicySets in the cluster\n';
  const lines = table(['NODE', 'ENFORCED', 'LATEST', 'IN SYNC', 'SINCE', 'PROBLEMS'], rows.map((r) => [
    r.node, r.enforced === undefined ? '-' : String(r.enforced), r.latest === undefined ? '-' : String(r.latest),
    r.inSync ? 'yes' : 'no', r.since ?? '-', r.problem ?? '',
  ]));
  const lagging = rows.filter((r) => !r.inSync).length;
  lines.push('', lagging === 0 ? `all ${rows.length} nodes enforce their latest CompiledPolicySet` : `${lagging} of ${rows.length} nodes do not enforce their latest CompiledPolicySet`);
  return `${lines.join('\n')}\n`;
}
