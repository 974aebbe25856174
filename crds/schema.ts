// Validates CompiledPolicySet objects against the CRD's own openAPIV3Schema, so the agent, the
// offline tools and the apiserver judge an object by the same rules.
import { readFileSync } from 'node:fs';
import { Ajv, type ErrorObject } from 'ajv';
import * as yaml from 'js-yaml';

const crdPath = new URL('./compiledpolicyset.yaml', import.meta.url);

interface CrdDocument {
  spec: { versions: Array<{ name: string; schema: { openAPIV3Schema: object } }> };
}

export function loadCrd(): CrdDocument {
  return yaml.load(readFileSync(crdPath, 'utf8')) as CrdDocument;
}

function buildValidator() {
  const ajv = new Ajv({ allErrors: true, strict: true });
  for (const keyword of ['x-kubernetes-list-type', 'x-kubernetes-list-map-keys', 'x-kubernetes-preserve-unknown-fields']) {
    ajv.addKeyword({ keyword });
  }
  ajv.addFormat('date-time', /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/);
  return ajv.compile(loadCrd().spec.versions[0].schema.openAPIV3Schema);
}

let validator: ReturnType<typeof buildValidator> | undefined;

/** Returns readable schema violations ("/spec/ipSets/0/kind: must be equal to one of ..."), empty when valid. */
export function schemaErrors(object: unknown): string[] {
  validator ??= buildValidator();
  if (validator(object)) return [];
  return (validator.errors ?? []).map((e: ErrorObject) => `${e.instancePath || '/'}: ${e.message ?? 'invalid'}`);
}
