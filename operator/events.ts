// Tells users where they look that a NetworkPolicy cannot be honoured in full: a Warning Event on the
// NetworkPolicy (`kubectl describe networkpolicy`), reason PolicyNotFullyHonoured, message = the
// compiler's diagnostics. One Event per distinct message per policy object, not per recompile: the
// Event's name is derived from the policy's uid and the message, so a restarted or newly elected
// operator that reports the same thing again gets 409 AlreadyExists and stays quiet.
import { createHash } from 'node:crypto';
import { ApiException, type CoreV1Api, type CoreV1Event, type V1NetworkPolicy } from '@kubernetes/client-node';
import type { Logger } from '../runtime/log.ts';
import type { OperatorMetrics } from './metrics.ts';
import { errorText } from './write-errors.ts';

export const NOT_HONOURED_REASON = 'PolicyNotFullyHonoured';
const MESSAGE_LIMIT = 1024;
/** A failed Event is tried again on a later flush, but not before this. */
const RETRY_MS = 30_000;

interface PolicyRef {
  namespace: string;
  name: string;
  uid: string;
  resourceVersion?: string;
}

interface Wanted {
  policy: PolicyRef;
  message: string;
}

export function diagnosticsMessage(diagnostics: string[]): string {
  const text = diagnostics.join('; ');
  return text.length <= MESSAGE_LIMIT ? text : `${text.slice(0, MESSAGE_LIMIT - 1)}…`;
}

export function eventName(policy: PolicyRef, message: string): string {
  const digest = createHash('sha256').update(`${policy.uid}\n${message}`).digest('hex').slice(0, 16);
  return `${policy.name.slice(0, 200)}.fencer-${digest}`;
}

export function notHonouredEvent(policy: PolicyRef, message: string, instance: string, now: Date): CoreV1Event {
  return {
    metadata: { name: eventName(policy, message), namespace: policy.namespace },
    involvedObject: { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', namespace: policy.namespace, name: policy.name, uid: policy.uid, resourceVersion: policy.resourceVersion },
    reason: NOT_HONOURED_REASON,
    message,
    type: 'Warning',
    source: { component: 'fencer-operator' },
    reportingComponent: 'fencer.dev/operator',
    reportingInstance: instance,
    firstTimestamp: now,
    lastTimestamp: now,
    count: 1,
  };
}

/** Which policies need an Event (pure bookkeeping) and, for the leader, emitting them. */
export class PolicyEventReporter {
  private readonly wanted = new Map<string, Wanted>();
  private readonly reported = new Map<string, string>();
  private readonly failedAt = new Map<string, number>();
  private readonly core: CoreV1Api;
  private readonly instance: string;
  private readonly metrics: OperatorMetrics;
  private readonly log: Logger;

  constructor(core: CoreV1Api, instance: string, metrics: OperatorMetrics, log: Logger) {
    this.core = core;
    this.instance = instance;
    this.metrics = metrics;
    this.log = log;
  }

  /** After a policy was compiled: remember what to report (nothing when it compiled cleanly). */
  note(policy: V1NetworkPolicy, diagnostics: string[]): void {
    const ref = policyRef(policy);
    const key = `${ref.namespace}/${ref.name}`;
    if (!diagnostics.length) {
      this.wanted.delete(key);
      return;
    }
    this.wanted.set(key, { policy: ref, message: diagnosticsMessage(diagnostics) });
  }

  forget(policy: V1NetworkPolicy): void {
    const ref = policyRef(policy);
    this.wanted.delete(`${ref.namespace}/${ref.name}`);
    this.reported.delete(`${ref.namespace}/${ref.name}`);
    this.failedAt.delete(`${ref.namespace}/${ref.name}`);
  }

  /** Emits every Event not yet reported (leader only). */
  async flush(): Promise<void> {
    for (const [key, want] of this.wanted) {
      const signature = `${want.policy.uid}\n${want.message}`;
      if (this.reported.get(key) === signature) continue;
      if (performance.now() - (this.failedAt.get(key) ?? -Infinity) < RETRY_MS) continue;
      if (await this.emit(want)) {
        this.reported.set(key, signature);
        this.failedAt.delete(key);
      } else this.failedAt.set(key, performance.now());
    }
  }

  private async emit(want: Wanted): Promise<boolean> {
    try {
      await this.core.createNamespacedEvent({ namespace: want.policy.namespace, body: notHonouredEvent(want.policy, want.message, this.instance, new Date()) });
      this.metrics.policyEvents.inc();
      this.log.warn({ policy: `${want.policy.namespace}/${want.policy.name}`, message: want.message }, 'NetworkPolicy not fully honoured');
      return true;
    } catch (e) {
      if (e instanceof ApiException && e.code === 409) return true;
      this.log.warn({ policy: `${want.policy.namespace}/${want.policy.name}`, err: errorText(e) }, 'could not emit Event');
      return false;
    }
  }
}

function policyRef(policy: V1NetworkPolicy): PolicyRef {
  return { namespace: policy.metadata!.namespace!, name: policy.metadata!.name!, uid: policy.metadata!.uid ?? '', resourceVersion: policy.metadata?.resourceVersion };
}
