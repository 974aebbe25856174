// The operator's HTTP endpoints: /healthz (the process runs), /readyz (every watch has listed and the
// first compile is done; a standby is ready too, its caches are warm) and /cluster-metrics (Azure
// NPM's path; /metrics serves the same).
import type { Route } from '../runtime/http.ts';
import { clusterTotals, syncCounts, type CpsStatusView, type OperatorMetrics } from './metrics.ts';

export interface OperatorView {
  ready(): boolean;
  queueDepth(): number;
  compiledPolicySets(): CpsStatusView[];
}

export function operatorRoutes(view: OperatorView, metrics: OperatorMetrics): Record<string, Route> {
  const scrape: Route = async () => {
    refreshGauges(view, metrics);
    return { status: 200, type: metrics.registry.contentType, body: await metrics.registry.metrics() };
  };
  return {
    '/healthz': () => ({ status: 200, body: 'ok\n' }),
    '/readyz': () => (view.ready() ? { status: 200, body: 'ok\n' } : { status: 503, body: 'watches not synced yet\n' }),
    '/cluster-metrics': scrape,
    '/metrics': scrape,
  };
}

/** Gauges computed at scrape time: queue depth and cluster totals from CompiledPolicySet statuses. */
export function refreshGauges(view: OperatorView, metrics: OperatorMetrics): void {
  metrics.queueDepth.set(view.queueDepth());
  const objects = view.compiledPolicySets();
  const totals = clusterTotals(objects);
  metrics.npm.numIptablesRules.set(totals.iptablesRules);
  metrics.npm.numIpsets.set(totals.ipsets);
  metrics.npm.numIpsetEntries.set(totals.ipsetEntries);
  const sync = syncCounts(objects);
  metrics.nodes.set({ state: 'in_sync' }, sync.inSync);
  metrics.nodes.set({ state: 'behind' }, sync.behind);
}
