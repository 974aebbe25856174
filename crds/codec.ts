// Keeps CompiledPolicySets under the apiserver's object size limit: the largest member lists are
// gzip-compressed into `membersGzip` until the spec fits a budget; agents expand them back.
import { gunzipSync, gzipSync } from 'node:zlib';
import type { CompiledPolicySetSpec, IPSet } from './types.ts';

export const DEFAULT_BUDGET_BYTES = 1024 * 1024;

export class SpecTooLargeError extends Error {}

export function specBytes(spec: CompiledPolicySetSpec): number {
  return Buffer.byteLength(JSON.stringify(spec));
}

/** The spec as it is written: unchanged when it fits, otherwise with its largest sets compressed. */
export function encodeForBudget(spec: CompiledPolicySetSpec, budgetBytes = DEFAULT_BUDGET_BYTES): CompiledPolicySetSpec {
  let size = specBytes(spec);
  if (size <= budgetBytes) return spec;
  const sets = spec.ipSets.map((s) => ({ ...s }));
  const bySize = [...sets].sort((a, b) => b.members.length - a.members.length || (a.name < b.name ? -1 : 1));
  const encoded = { ...spec, ipSets: sets };
  for (const set of bySize) {
    if (set.members.length === 0) break;
    set.membersGzip = gzipSync(set.members.join('\n'), { level: 9 }).toString('base64');
    set.members = [];
    size = specBytes(encoded);
    if (size <= budgetBytes) return encoded;
  }
  throw new SpecTooLargeError(`the CompiledPolicySet of node ${spec.nodeName} needs ${size} bytes even compressed; the budget is ${budgetBytes}`);
}

/** The spec with every member list in plain form. */
export function expandSpec(spec: CompiledPolicySetSpec): CompiledPolicySetSpec {
  if (!spec.ipSets.some((s) => s.membersGzip)) return spec;
  return { ...spec, ipSets: spec.ipSets.map(expandSet) };
}

function expandSet(set: IPSet): IPSet {
  if (!set.membersGzip) return set;
  const text = gunzipSync(Buffer.from(set.membersGzip, 'base64')).toString('utf8');
  const { membersGzip: _, ...rest } = set;
  return { ...rest, members: text === '' ? [] : text.split('\n') };
}
