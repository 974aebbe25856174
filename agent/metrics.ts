// The agent's metrics: Azure NPM's node metrics under their own names, plus fencer_ metrics.
import { Counter, Gauge, Histogram, Registry } from '../runtime/prom.ts';
import { npmNodeMetrics } from '../runtime/npm-metrics.ts';

export function agentMetrics(registry = new Registry()) {
  return {
    registry,
    ...npmNodeMetrics(registry),
    applySeconds: new Histogram({ name: 'fencer_agent_apply_seconds', help: 'time to apply a CompiledPolicySet', labelNames: ['kind', 'result'], buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers: [registry] }),
    applies: new Counter({ name: 'fencer_agent_applies_total', help: 'applies by result (noop, members, rules, invalid, failed)', labelNames: ['result'], registers: [registry] }),
    driftRepairs: new Counter({ name: 'fencer_agent_drift_repairs_total', help: 'times the kernel differed from the enforced spec and was repaired', registers: [registry] }),
    enforcedGeneration: new Gauge({ name: 'fencer_agent_enforced_generation', help: 'generation of the CompiledPolicySet enforced', registers: [registry] }),
    dataplane: new Gauge({ name: 'fencer_agent_dataplane', help: 'the dataplane this agent enforces with (1 on the label that names it)', labelNames: ['dataplane'], registers: [registry] }),
    receivedToEnforced: new Histogram({ name: 'fencer_agent_received_to_enforced_seconds', help: 'from receiving a new generation to enforcing it', buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers: [registry] }),
  };
}

export type AgentMetrics = ReturnType<typeof agentMetrics>;
