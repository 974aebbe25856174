// What the operator believes each CompiledPolicySet looks like on the apiserver: fed by the CPS watch
// and by the responses to its own writes. A watch event older than a write response (same object,
// lower generation) is ignored, so a late event can never make a written spec look unwritten or an
// old spec look current. resourceVersions are opaque and never compared; generation is monotonic
// per object (uid) and is. Whatever slips through (an older status-only event) costs one 409.
// Only what decisions need is kept (metadata, status, the spec's hash): member lists can be large.
import type { CompiledPolicySet, CompiledPolicySetSpec } from '../crds/types.ts';

/** A CompiledPolicySet without its (possibly large) spec body. */
export type ObservedCps = Omit<CompiledPolicySet, 'spec'> & { spec: Pick<CompiledPolicySetSpec, 'nodeName' | 'contentHash'> };

export function observed(object: CompiledPolicySet | ObservedCps): ObservedCps {
  const { managedFields: _managed, ...metadata } = object.metadata;
  return { ...object, metadata, spec: { nodeName: object.spec?.nodeName, contentHash: object.spec?.contentHash } };
}

export class CpsStore {
  private readonly objects = new Map<string, ObservedCps>();

  get(name: string): ObservedCps | undefined {
    return this.objects.get(name);
  }

  names(): string[] {
    return [...this.objects.keys()];
  }

  all(): ObservedCps[] {
    return [...this.objects.values()];
  }

  /** Records an object seen in a watch event or a write response; false when it was older than what is known. */
  upsert(object: CompiledPolicySet | ObservedCps): boolean {
    const known = this.objects.get(object.metadata.name);
    if (known && isOlder(object, known)) return false;
    this.objects.set(object.metadata.name, observed(object));
    return true;
  }

  /** Forgets an object; a deletion of an earlier incarnation (another uid) is ignored. */
  delete(object: { metadata: { name: string; uid?: unknown } }): boolean {
    const known = this.objects.get(object.metadata.name);
    if (!known) return false;
    if (object.metadata.uid && known.metadata.uid && object.metadata.uid !== known.metadata.uid) return false;
    this.objects.delete(object.metadata.name);
    return true;
  }
}

function isOlder(candidate: ObservedCps, known: ObservedCps): boolean {
  if (candidate.metadata.uid !== known.metadata.uid) return false;
  return (candidate.metadata.generation ?? 0) < (known.metadata.generation ?? 0);
}
