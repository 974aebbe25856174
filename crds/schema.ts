// Validates CompiledPolicySet and AddressSet objects against their CRDs' own openAPIV3Schema, so the
// agent, the offline tools and the apiserver judge an object by the same rules.
import { readFileSync } from 'node:fs';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import * as yaml from 'js-yaml';

const crdPaths = {
  compiledpolicyset: new URL('./compiledpolicyset.yaml', import.meta.url),
  addressset: new URL('./addressset.yaml', import.meta.url),
};

type CrdName = keyof typeof crdPaths;

interface CrdDocument {
  spec: { versions: Array<{ name: string; schema: { openAPIV3Schema: object } }> };
}

export function loadCrd(name: CrdName = 'compiledpolicyset'): CrdDocument {
  return yaml.load(readFileSync(crdPaths[name], 'utf8')) as CrdDocument;
}

let ajv: Ajv | undefined;
const validators = new Map<CrdName, ValidateFunction>();

function validatorFor(name: CrdName): ValidateFunction {
  let v = validators.get(name);
  if (v) return v;
  if (!ajv) {
    ajv = new Ajv({ allErrors: true, strict: true });
    for (const keyword of ['x-kubernetes-list-type', 'x-kubernetes-list-map-keys', 'x-kubernetes-preserve-unknown-fields']) ajv.addKeyword({ keyword });
    ajv.addFormat('date-time', /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/);
  }
  v = ajv.compile(loadCrd(name).spec.versions[0].schema.openAPIV3Schema);
  validators.set(name, v);
  return v;
}

function errorsOf(name: CrdName, object: unknown): string[] {
  const validator = validatorFor(name);
  if (validator(object)) return [];
  return (validator.errors ?? []).map((e: ErrorObject) => `${e.instancePath || '/'}: ${e.message ?? 'invalid'}`);
}

/** Readable CompiledPolicySet schema violations ("/spec/ipSets/0/kind: must be equal to one of ..."), empty when valid. */
export function schemaErrors(object: unknown): string[] {
  return errorsOf('compiledpolicyset', object);
}

/** The same for an AddressSet shard. */
export function addressSetSchemaErrors(object: unknown): string[] {
  return errorsOf('addressset', object);
}
