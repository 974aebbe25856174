// The generated validators are what the CRDs say now: change a CRD, run `npm run generate`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { GENERATED, validatorsSource } from '../../scripts/generate-validators.ts';
import { addressSetSchemaErrors, schemaErrors } from '../../crds/schema.ts';

test('crds/schema-validators.generated.ts is what scripts/generate-validators.ts writes from the CRDs', () => {
  assert.equal(readFileSync(GENERATED, 'utf8'), validatorsSource(), 'stale: run `npm run generate`');
});

test('the validators name each violation by its path, and pass a valid object', () => {
  assert.deepEqual(schemaErrors({ spec: { nodeName: '' } }).slice(0, 2), ['/spec: must have required property \'contentHash\'', '/spec: must have required property \'podCIDRs\'']);
  const shard = { spec: { set: 'p-0123456789abcdef', kind: 'ip', origin: 'o', epoch: 0, shard: 0, shards: 1, size: 1, nodes: 1, members: ['10.0.0.1'] } };
  assert.deepEqual(addressSetSchemaErrors(shard), []);
  assert.deepEqual(addressSetSchemaErrors({ spec: { ...shard.spec, kind: 'mac' } }), ['/spec/kind: must be equal to one of the allowed values']);
});
