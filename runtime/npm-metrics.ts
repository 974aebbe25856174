// Azure NPM's metrics, with the exact names, types, labels and units its dashboards and alerts use
// (../shared/reference/azure-npm-compat.md): summaries in milliseconds with quantiles 0.5/0.9/0.99.
import { Counter, Gauge, Histogram, Registry, Summary } from './prom.ts';

const percentiles = [0.5, 0.9, 0.99];
// prom-client takes no per-quantile error objectives; NPM's are 0.05/0.01/0.001 — the sliding window stands in.
const summary = (registry: Registry, name: string, help: string, labelNames: string[] = []) =>
  new Summary({ name, help, labelNames, percentiles, maxAgeSeconds: 600, ageBuckets: 5, registers: [registry] });

export function npmGauges(registry: Registry) {
  return {
    numPolicies: new Gauge({ name: 'npm_num_policies', help: 'number of network policies', registers: [registry] }),
    numIptablesRules: new Gauge({ name: 'npm_num_iptables_rules', help: 'number of iptables rules Fencer owns', registers: [registry] }),
    numIpsets: new Gauge({ name: 'npm_num_ipsets', help: 'number of ipsets Fencer owns', registers: [registry] }),
    numIpsetEntries: new Gauge({ name: 'npm_num_ipset_entries', help: 'number of entries across those ipsets', registers: [registry] }),
  };
}

export function npmNodeMetrics(registry: Registry) {
  return {
    ...npmGauges(registry),
    ipsetCounts: new Gauge({ name: 'npm_ipset_counts', help: 'entries per ipset', labelNames: ['set_name', 'set_hash'], registers: [registry] }),
    addIptablesRuleExecTime: summary(registry, 'npm_add_iptables_rule_exec_time', 'time to program iptables rules (ms)'),
    addIpsetExecTime: summary(registry, 'npm_add_ipset_exec_time', 'time to program ipsets (ms)'),
    addPolicyExecTime: summary(registry, 'npm_add_policy_exec_time', 'time to add a policy (ms)', ['had_error']),
    iptablesRestoreLatency: new Histogram({
      name: 'npm_linux_iptables_restore_latency_seconds', help: 'iptables-restore latency', labelNames: ['operation'],
      buckets: Array.from({ length: 14 }, (_, i) => 0.016 * 2 ** i), registers: [registry],
    }),
    iptablesRestoreFailures: new Counter({ name: 'npm_linux_iptables_restore_failure_total', help: 'failed iptables-restore runs', registers: [registry] }),
  };
}

export function npmClusterMetrics(registry: Registry) {
  return {
    ...npmGauges(registry),
    addPolicyExecTime: summary(registry, 'npm_add_policy_exec_time', 'time to add a policy (ms)', ['had_error']),
    controllerPolicyExecTime: summary(registry, 'npm_controller_policy_exec_time', 'handling a NetworkPolicy event (ms)', ['operation', 'had_error']),
    controllerNamespaceExecTime: summary(registry, 'npm_controller_namespace_exec_time', 'handling a Namespace event (ms)', ['operation', 'had_error']),
    controllerPodExecTime: summary(registry, 'npm_controller_pod_exec_time', 'handling a Pod event (ms)', ['operation', 'had_error']),
  };
}

/** Azure NPM's Windows dataplane metrics (npm/metrics/prometheus-metrics.go: namespace npm, subsystem windows). */
export function npmWindowsMetrics(registry: Registry) {
  const buckets = Array.from({ length: 14 }, (_, i) => 0.016 * 2 ** i);
  const histogram = (name: string, help: string, labelNames: string[] = []) => new Histogram({ name, help, labelNames, buckets, registers: [registry] });
  const counter = (name: string, help: string, labelNames: string[] = []) => new Counter({ name, help, labelNames, registers: [registry] });
  return {
    listEndpointsLatency: histogram('npm_windows_list_endpoints_latency_seconds', 'latency in seconds to list HNS endpoints'),
    getEndpointLatency: histogram('npm_windows_get_endpoint_latency_seconds', 'latency in seconds to get a single HNS endpoint'),
    getNetworkLatency: histogram('npm_windows_get_network_latency_seconds', 'latency in seconds to get the HNS network'),
    aclLatency: histogram('npm_windows_acl_latency_seconds', 'latency in seconds to add/update ACLs by operation label', ['operation']),
    setPolicyLatency: histogram('npm_windows_setpolicy_latency_seconds', 'latency in seconds to add/update/delete SetPolicies by operation & is_nested label', ['operation', 'is_nested']),
    listEndpointsFailures: counter('npm_windows_list_endpoints_failure_total', 'failures while listing HNS endpoints'),
    getEndpointFailures: counter('npm_windows_get_endpoint_failure_total', 'failures while getting a single HNS endpoint'),
    getNetworkFailures: counter('npm_windows_get_network_failure_total', 'failures while getting the HNS network'),
    aclFailures: counter('npm_windows_acl_failure_total', 'failures while adding/updating ACLs by operation label', ['operation']),
    setPolicyFailures: counter('npm_windows_setpolicy_failure_total', 'failures while adding/updating/deleting SetPolicies by operation & is_nested label', ['operation', 'is_nested']),
  };
}

export type NpmWindowsMetrics = ReturnType<typeof npmWindowsMetrics>;
