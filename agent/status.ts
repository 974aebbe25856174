// The status an agent reports: what it enforces, since when, and whether it is in sync.
import type { CompiledPolicySet, CompiledPolicySetStatus, Condition } from '../crds/types.ts';

export interface Enforced { generation: number; hash: string; at: string; counts: { iptablesRules: number; ipsets: number; ipsetEntries: number } }

export interface AgentReport {
  agent: string;
  /** The last generation fully enforced, if any. */
  enforced?: Enforced;
  /** Why the latest generation is not enforced, if it is not. */
  problem?: { reason: 'Invalid' | 'ApplyFailed' | 'WaitingForSets'; message: string };
}

export function buildStatus(cps: CompiledPolicySet, report: AgentReport, previous: CompiledPolicySetStatus | undefined, now: string): CompiledPolicySetStatus {
  const generation = cps.metadata.generation ?? 0;
  const inSync = !report.problem && report.enforced?.generation === generation && report.enforced.hash === cps.spec.contentHash;
  // Waiting for a shared set is not a fault: the operator writes sets before the specs naming them.
  const fault = report.problem?.reason === 'WaitingForSets' ? undefined : report.problem;
  const conditions: Condition[] = [
    condition('Applied', report.enforced ? 'True' : 'False', report.enforced ? 'Applied' : 'NothingApplied',
      report.enforced ? `generation ${report.enforced.generation} (${report.enforced.hash.slice(7, 19)}) enforced` : 'nothing enforced yet', report.enforced?.generation),
    condition('Degraded', fault ? 'True' : 'False', fault?.reason ?? 'AsExpected', fault?.message ?? '', generation),
    condition('InSync', inSync ? 'True' : 'False', inSync ? 'Enforced' : (report.problem?.reason ?? 'Pending'),
      inSync ? `the latest generation ${generation} is enforced` : `generation ${generation} is not enforced yet${report.problem && !fault ? `: ${report.problem.message}` : ''}`, generation),
  ].map((c) => keepTransitionTime(c, previous?.conditions, now));
  const status: CompiledPolicySetStatus = { agent: report.agent, conditions };
  if (report.enforced) {
    status.observedGeneration = report.enforced.generation;
    status.appliedHash = report.enforced.hash;
    status.appliedAt = report.enforced.at;
    status.counts = report.enforced.counts;
  }
  return status;
}

function condition(type: Condition['type'], status: Condition['status'], reason: string, message: string, observedGeneration?: number): Condition {
  const c: Condition = { type, status, reason, message: message.slice(0, 32000), lastTransitionTime: '' };
  if (observedGeneration !== undefined) c.observedGeneration = observedGeneration;
  return c;
}

function keepTransitionTime(c: Condition, previous: Condition[] | undefined, now: string): Condition {
  const before = previous?.find((p) => p.type === c.type);
  return { ...c, lastTransitionTime: before && before.status === c.status ? before.lastTransitionTime : now };
}

/** Status writes are skipped when the object already carries this status (key order aside). */
export function sameStatus(a: CompiledPolicySetStatus | undefined, b: CompiledPolicySetStatus): boolean {
  return canonical(a ?? {}) === canonical(b);
}

function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v).filter((k) => (v as Record<string, unknown>)[k] !== undefined).sort().map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}
