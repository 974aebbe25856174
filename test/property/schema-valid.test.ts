import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { PolicyCompiler } from '../../operator/compile/compiler.ts';
import { cpsObject } from '../../operator/cps-object.ts';
import { schemaErrors } from '../../crds/schema.ts';
import { cluster } from './arbitraries.ts';

test('every compiled CompiledPolicySet satisfies the CRD schema', () => {
  fc.assert(
    fc.property(cluster, (c) => {
      for (const spec of PolicyCompiler.compile(c).values()) assert.deepEqual(schemaErrors(cpsObject(spec)), []);
    }),
    { numRuns: Number(process.env.FENCER_PROPERTY_RUNS ?? 2000) / 4 },
  );
});
