// Validates CompiledPolicySet and AddressSet objects against their CRDs' own openAPIV3Schema, so the
// agent, the offline tools and the apiserver judge an object by the same rules. The validators are
// ajv's, generated ahead of time from the CRDs (scripts/generate-validators.ts), so nothing compiles
// a schema at run time.
import { addressset, compiledpolicyset } from './schema-validators.generated.ts';

interface Validator {
  (object: unknown): boolean;
  errors?: Array<{ instancePath: string; message?: string }> | null;
}

function errorsOf(validator: Validator, object: unknown): string[] {
  if (validator(object)) return [];
  return (validator.errors ?? []).map((e) => `${e.instancePath || '/'}: ${e.message ?? 'invalid'}`);
}

/** Readable CompiledPolicySet schema violations ("/spec/ipSets/0/kind: must be equal to one of ..."), empty when valid. */
export function schemaErrors(object: unknown): string[] {
  return errorsOf(compiledpolicyset as Validator, object);
}

/** The same for an AddressSet shard. */
export function addressSetSchemaErrors(object: unknown): string[] {
  return errorsOf(addressset as Validator, object);
}
