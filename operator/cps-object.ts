// A CompiledPolicySet object around a compiled spec, as the operator writes it.
import { CPS_API_VERSION, CPS_KIND, type CompiledPolicySet, type CompiledPolicySetSpec } from '../crds/types.ts';

export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';

export function cpsObject(spec: CompiledPolicySetSpec): CompiledPolicySet {
  return {
    apiVersion: CPS_API_VERSION,
    kind: CPS_KIND,
    metadata: { name: spec.nodeName, labels: { [MANAGED_BY_LABEL]: 'fencer' } },
    spec,
  };
}
