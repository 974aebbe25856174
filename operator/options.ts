// The operator's settings: defaults, and the one place that checks them. Flags and environment
// variables are mapped onto these by cli/operator.ts (docs/operator.md lists them).
import { hostname } from 'node:os';
import type { KubeConfig } from '@kubernetes/client-node';
import { DEFAULT_BUDGET_BYTES } from '../crds/codec.ts';
import type { Logger } from '../runtime/log.ts';

export interface LeaseTimings {
  /** How long a lease stays valid without renewal (written to the Lease in whole seconds). */
  durationMs: number;
  /** How often the leader renews. */
  renewMs: number;
  /** How often a standby tries to acquire. */
  retryMs: number;
  /** The leader steps down when it could not renew for this long (< durationMs, so two never write at once). */
  renewDeadlineMs: number;
}

export interface OperatorOptions {
  /** An already loaded KubeConfig (in-process callers, tests); wins over kubeconfigPath. */
  kubeConfig?: KubeConfig;
  /** Path to a kubeconfig; default: $KUBECONFIG, ~/.kube/config, then the in-cluster service account. */
  kubeconfigPath?: string;
  /** Namespace of the Lease. */
  namespace: string;
  leaseName: string;
  /** This replica's name in the Lease. */
  identity: string;
  lease: LeaseTimings;
  /** HTTP port for /healthz, /readyz, /cluster-metrics; 0 picks a free port; -1 serves nothing. */
  metricsPort: number;
  metricsHost: string;
  /** At most one recompile per this many ms; a change after a quiet window is compiled at once. */
  coalesceMs: number;
  /** Largest CompiledPolicySet spec written; bigger ones get compressed member lists. */
  cpsBudgetBytes: number;
  /** Safety relist of every watch; 0 disables it. */
  relistSeconds: number;
  /** CompiledPolicySet writes in flight at once (never two for the same node). */
  writeConcurrency: number;
  /** An agent that has not reported a new generation this long after its write is marked InSync=Pending. */
  pendingAfterMs: number;
  log?: Logger;
}

export const DEFAULT_LEASE: LeaseTimings = { durationMs: 10_000, renewMs: 2_000, retryMs: 2_000, renewDeadlineMs: 7_000 };

export const DEFAULT_OPTIONS: Omit<OperatorOptions, 'identity'> = {
  namespace: 'kube-system',
  leaseName: 'fencer-operator',
  lease: DEFAULT_LEASE,
  metricsPort: 10091,
  metricsHost: '0.0.0.0',
  coalesceMs: 50,
  cpsBudgetBytes: DEFAULT_BUDGET_BYTES,
  relistSeconds: 300,
  writeConcurrency: 8,
  pendingAfterMs: 1000,
};

export class OptionsError extends Error {}

export type OperatorOptionsInput = Partial<Omit<OperatorOptions, 'lease'>> & { lease?: Partial<LeaseTimings> };

/** Fills in defaults and rejects settings that would make the operator misbehave. */
export function resolveOptions(input: OperatorOptionsInput = {}): OperatorOptions {
  const defined = Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined)) as OperatorOptionsInput;
  const lease = { ...DEFAULT_LEASE, ...input.lease };
  const options: OperatorOptions = { ...DEFAULT_OPTIONS, identity: hostname(), ...defined, lease };
  checkOptions(options);
  return options;
}

function checkOptions(o: OperatorOptions): void {
  const problems: string[] = [];
  if (!Number.isInteger(o.metricsPort) || o.metricsPort < -1 || o.metricsPort > 65535) problems.push(`metrics port ${o.metricsPort} is not -1..65535`);
  if (!(o.coalesceMs >= 0)) problems.push(`coalesce window ${o.coalesceMs} ms is negative`);
  if (!(o.cpsBudgetBytes >= 1024)) problems.push(`CPS budget ${o.cpsBudgetBytes} bytes is below 1024`);
  if (!(o.relistSeconds >= 0)) problems.push(`relist period ${o.relistSeconds} s is negative`);
  if (!(o.writeConcurrency >= 1)) problems.push(`write concurrency ${o.writeConcurrency} is below 1`);
  if (!(o.pendingAfterMs >= 0)) problems.push(`pending delay ${o.pendingAfterMs} ms is negative`);
  if (!o.identity) problems.push('identity is empty');
  if (o.lease.durationMs < 1000 || o.lease.durationMs % 1000 !== 0) problems.push(`lease duration ${o.lease.durationMs} ms is not a whole number of seconds`);
  if (!(o.lease.renewDeadlineMs < o.lease.durationMs)) problems.push('the renew deadline must be shorter than the lease duration');
  if (!(o.lease.renewMs > 0 && o.lease.renewMs < o.lease.renewDeadlineMs)) problems.push('the renew period must be positive and shorter than the renew deadline');
  if (!(o.lease.retryMs > 0)) problems.push('the retry period must be positive');
  if (problems.length) throw new OptionsError(`invalid operator options: ${problems.join('; ')}`);
}
