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

/**
 * The most bytes the compressed member lists of one spec may expand to: a million entries (the agent's
 * limit) of the longest member form. A "zip bomb" written into a spec is refused, not inflated.
 */
export const MAX_EXPANDED_BYTES = 64 * 1024 * 1024;

/** The spec with every member list in plain form; throws when the lists would expand beyond maxBytes. */
export function expandSpec(spec: CompiledPolicySetSpec, maxBytes = MAX_EXPANDED_BYTES): CompiledPolicySetSpec {
  if (!spec.ipSets.some((s) => s.membersGzip)) return spec;
  let left = maxBytes;
  return {
    ...spec,
    ipSets: spec.ipSets.map((set) => {
      const { expanded, bytes } = expandSet(set, left);
      left -= bytes;
      return expanded;
    }),
  };
}

function expandSet(set: IPSet, maxBytes: number): { expanded: IPSet; bytes: number } {
  if (!set.membersGzip) return { expanded: set, bytes: 0 };
  let raw: Buffer;
  try {
    raw = gunzipSync(Buffer.from(set.membersGzip, 'base64'), { maxOutputLength: Math.max(1, maxBytes) });
  } catch (e) {
    if ((e as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') throw new Error(`set ${set.name}: compressed members expand beyond ${maxBytes} bytes`);
    throw e;
  }
  const text = raw.toString('utf8');
  const { membersGzip: _, ...rest } = set;
  return { expanded: { ...rest, members: text === '' ? [] : text.split('\n') }, bytes: raw.length };
}
