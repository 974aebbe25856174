// The operator's metrics: Azure NPM's cluster metrics with their exact names (runtime/npm-metrics.ts),
// and Fencer's own. The npm_num_iptables_rules / ipsets / ipset_entries gauges are true cluster
// totals, summed from what each node's agent reports in its CompiledPolicySet status.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { CompiledPolicySetStatus } from '../crds/types.ts';
import { npmClusterMetrics } from '../runtime/npm-metrics.ts';

export type WriteResult = 'created' | 'updated' | 'deleted' | 'status' | 'conflict' | 'error' | 'too_large';

export function operatorMetrics(registry = new Registry()) {
  return {
    registry,
    npm: npmClusterMetrics(registry),
    queueDepth: new Gauge({ name: 'fencer_operator_queue_depth', help: 'nodes waiting to be recompiled or written', registers: [registry] }),
    leader: new Gauge({ name: 'fencer_operator_leader', help: '1 while this replica holds the lease and writes', registers: [registry] }),
    cpsWrites: new Counter({ name: 'fencer_cps_writes_total', help: 'CompiledPolicySet writes by result', labelNames: ['result'], registers: [registry] }),
    cpsBytes: new Counter({ name: 'fencer_cps_bytes_written_total', help: 'bytes of CompiledPolicySet specs sent in creates and updates', registers: [registry] }),
    asetWrites: new Counter({ name: 'fencer_addressset_writes_total', help: 'AddressSet shard writes by result', labelNames: ['result'], registers: [registry] }),
    asetBytes: new Counter({ name: 'fencer_addressset_bytes_written_total', help: 'bytes of AddressSet shards sent in creates and updates', registers: [registry] }),
    eventToWrite: new Histogram({
      name: 'fencer_event_to_write_seconds',
      help: 'from the first watch event that changed a node to its CompiledPolicySet written',
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    nodes: new Gauge({ name: 'fencer_cps_nodes', help: 'CompiledPolicySets by whether their agent enforces the latest generation (in_sync) or not (behind)', labelNames: ['state'], registers: [registry] }),
    policyEvents: new Counter({ name: 'fencer_policy_events_total', help: 'Kubernetes Events emitted on NetworkPolicies that cannot be fully honoured', registers: [registry] }),
  };
}

export type OperatorMetrics = ReturnType<typeof operatorMetrics>;

/** The parts of a CompiledPolicySet the cluster gauges read. */
export interface CpsStatusView {
  metadata: { generation?: number };
  spec: { contentHash: string };
  status?: CompiledPolicySetStatus;
}

export interface ClusterTotals {
  iptablesRules: number;
  ipsets: number;
  ipsetEntries: number;
}

/** Sums what the agents report enforcing; nodes that have not reported count as zero. */
export function clusterTotals(objects: Iterable<CpsStatusView>): ClusterTotals {
  const totals: ClusterTotals = { iptablesRules: 0, ipsets: 0, ipsetEntries: 0 };
  for (const o of objects) {
    const c = o.status?.counts;
    totals.iptablesRules += c?.iptablesRules ?? 0;
    totals.ipsets += c?.ipsets ?? 0;
    totals.ipsetEntries += c?.ipsetEntries ?? 0;
  }
  return totals;
}

/** How many nodes' agents report enforcing exactly the latest spec (generation and hash). */
export function syncCounts(objects: Iterable<CpsStatusView>): { inSync: number; behind: number } {
  let inSync = 0;
  let behind = 0;
  for (const o of objects) {
    const current = o.status?.observedGeneration === o.metadata.generation && o.status?.appliedHash === o.spec.contentHash;
    if (current) inSync++;
    else behind++;
  }
  return { inSync, behind };
}

/** Total of a counter's series, optionally only those whose label matches. */
export async function counterTotal(counter: Counter, label?: { name: string; values: string[] }): Promise<number> {
  const { values } = await counter.get();
  return values
    .filter((v) => !label || label.values.includes(String(v.labels[label.name])))
    .reduce((sum, v) => sum + v.value, 0);
}
