// After the operator changes a node's spec, `kubectl get cps` must not go on saying InSync=True about
// the previous generation until the agent reports again. The operator flips the InSync condition to
// False (reason Pending) with a JSON patch on the status subresource whose first operation tests
// that metadata.resourceVersion is still the one its own spec write returned. Any status written by
// the agent after that spec write changes the resourceVersion, so the test fails (422) and the patch
// is dropped: an agent that has already caught up is never overwritten. The agent's own status
// writes (update with resourceVersion) conflict with this patch in the same way, so neither side
// can clobber the other.
import type { CompiledPolicySet, CompiledPolicySetStatus, Condition } from '../crds/types.ts';

export type JsonPatchOp =
  | { op: 'test'; path: string; value: unknown }
  | { op: 'add'; path: string; value: unknown };

/** The status with InSync=False/Pending for the object's generation; undefined when it already says so. */
export function pendingStatus(object: Pick<CompiledPolicySet, 'metadata' | 'status'>, now: string): CompiledPolicySetStatus | undefined {
  const generation = object.metadata.generation ?? 1;
  const status = object.status ?? {};
  const previous = status.conditions?.find((c) => c.type === 'InSync');
  if (previous?.status === 'False' && previous.reason === 'Pending' && previous.observedGeneration === generation) return undefined;
  const inSync: Condition = {
    type: 'InSync',
    status: 'False',
    reason: 'Pending',
    message: `generation ${generation} is not enforced yet`,
    lastTransitionTime: previous?.status === 'False' ? previous.lastTransitionTime : now,
    observedGeneration: generation,
  };
  const others = (status.conditions ?? []).filter((c) => c.type !== 'InSync');
  return { ...status, conditions: [...others, inSync] };
}

/** The guarded patch for the object exactly as the spec write returned it; undefined when nothing changes. */
export function pendingStatusPatch(written: Pick<CompiledPolicySet, 'metadata' | 'status'>, now: string): JsonPatchOp[] | undefined {
  const rv = written.metadata.resourceVersion;
  const status = pendingStatus(written, now);
  if (!rv || !status) return undefined;
  return [
    { op: 'test', path: '/metadata/resourceVersion', value: rv },
    { op: 'add', path: '/status', value: status },
  ];
}

/** RFC 3339 without fractions, as Kubernetes writes condition times. */
export function conditionTime(date = new Date()): string {
  return date.toISOString().replace(/\.\d+Z$/, 'Z');
}
