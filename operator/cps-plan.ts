// Decides what one node's CompiledPolicySet needs, from what should be (the compiled spec and the
// Node) and what is (the object last seen). Pure; writer.ts carries the decision out.
import { encodeForBudget, expandSpec } from '../crds/codec.ts';
import type { CompiledPolicySet, CompiledPolicySetSpec } from '../crds/types.ts';
import { cpsObject, MANAGED_BY_LABEL } from './cps-object.ts';
import type { ObservedCps } from './cps-store.ts';

export interface NodeRef {
  name: string;
  uid: string;
}

export type CpsAction =
  | { kind: 'noop' }
  | { kind: 'create'; object: CompiledPolicySet }
  | { kind: 'update'; object: CompiledPolicySet }
  | { kind: 'delete'; name: string; uid?: string };

/**
 * - the Node is gone: delete what exists;
 * - the Node exists but is not compiled yet: nothing (its compile will ask again);
 * - nothing exists: create;
 * - another content hash, owner or missing label: replace the spec, guarded by resourceVersion;
 * - otherwise nothing: same hash, same bytes on the wire, no write.
 * Throws SpecTooLargeError when the spec cannot be made to fit the budget.
 */
export function planCpsWrite(desired: CompiledPolicySetSpec | undefined, node: NodeRef | undefined, observed: ObservedCps | undefined, budgetBytes: number): CpsAction {
  if (!node) return observed ? { kind: 'delete', name: observed.metadata.name, uid: observed.metadata.uid as string | undefined } : { kind: 'noop' };
  if (!desired) return { kind: 'noop' };
  if (!observed) return { kind: 'create', object: desiredObject(desired, node, budgetBytes) };
  if (upToDate(desired, node, observed)) return { kind: 'noop' };
  return { kind: 'update', object: replacement(desiredObject(desired, node, budgetBytes), observed) };
}

export function desiredObject(spec: CompiledPolicySetSpec, node: NodeRef, budgetBytes: number): CompiledPolicySet {
  const object = cpsObject(encodeForBudget(spec, budgetBytes));
  object.metadata.ownerReferences = [nodeOwner(node)];
  return object;
}

export function nodeOwner(node: NodeRef): { apiVersion: string; kind: string; name: string; uid: string } {
  return { apiVersion: 'v1', kind: 'Node', name: node.name, uid: node.uid };
}

function upToDate(desired: CompiledPolicySetSpec, node: NodeRef, observed: ObservedCps): boolean {
  const owners = observed.metadata.ownerReferences ?? [];
  return observed.spec?.contentHash === desired.contentHash
    && observed.metadata.labels?.[MANAGED_BY_LABEL] === 'fencer'
    && owners.some((o) => o.kind === 'Node' && o.uid === node.uid);
}

/** The update body: our spec, label and owner on the observed metadata (others' labels and annotations kept). */
function replacement(object: CompiledPolicySet, observed: ObservedCps): CompiledPolicySet {
  const { managedFields: _managed, ...metadata } = observed.metadata;
  return {
    ...object,
    metadata: {
      ...metadata,
      labels: { ...observed.metadata.labels, ...object.metadata.labels },
      ownerReferences: object.metadata.ownerReferences,
    },
  };
}

/**
 * Whether a spec read back from the apiserver (keys reordered, member lists possibly compressed)
 * holds exactly the compiled spec. A spec that cannot even be expanded differs.
 */
export function sameContent(observed: CompiledPolicySetSpec, desired: CompiledPolicySetSpec): boolean {
  try {
    return canonical(withoutRevisions(expandSpec(observed))) === canonical(withoutRevisions(desired));
  } catch {
    return false;
  }
}

/** Revisions are stamped at write time and say when, not what: they are not content. */
function withoutRevisions(spec: CompiledPolicySetSpec): CompiledPolicySetSpec {
  if (!spec.sharedSets) return spec;
  return { ...spec, sharedSets: spec.sharedSets.map(({ revision: _, ...ref }) => ref) };
}

function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o).filter((k) => o[k] !== undefined).sort().map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}
