import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { mergePatchFor } from '../../agent/status-patch.ts';

/** RFC 7386 applied, as the apiserver does for a JSON merge patch. */
function applyMergePatch(target: unknown, patch: unknown): unknown {
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) return patch;
  const out: Record<string, unknown> = typeof target === 'object' && target !== null && !Array.isArray(target) ? { ...(target as Record<string, unknown>) } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = applyMergePatch(out[k], v);
  }
  return out;
}

const json = fc.letrec((tie) => ({
  value: fc.oneof({ depthSize: 'small' }, fc.boolean(), fc.integer(), fc.string(), fc.array(tie('value'), { maxLength: 3 }), tie('object')),
  object: fc.dictionary(fc.constantFrom('a', 'b', 'counts', 'conditions', 'x'), tie('value'), { maxKeys: 4 }),
}));

test('the status merge patch turns the current status into exactly the new one (dropped keys and nested counts included)', () => {
  fc.assert(fc.property(json.object, json.object, (current, next) => {
    // Through JSON, as on the wire (and as the apiserver stores it).
    const wire = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;
    const patched = applyMergePatch(wire(current), wire(mergePatchFor(current, next as Record<string, unknown>)));
    assert.deepEqual(patched, wire(next));
  }), { numRuns: 2000 });
  assert.deepEqual(mergePatchFor({ appliedHash: 'h1', counts: { ipsets: 2, iptablesRules: 5 } }, { counts: { ipsets: 3 } }), { appliedHash: null, counts: { ipsets: 3, iptablesRules: null } });
});
