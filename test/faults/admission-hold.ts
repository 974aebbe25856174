// Holds back writes of one resource at the apiserver for a while, as an overloaded or throttling
// apiserver would: a ValidatingAdmissionPolicy (CEL, admissionregistration.k8s.io/v1) that refuses
// every CREATE, UPDATE and DELETE of it, until released. Resolves only once the apiserver enforces
// it (a dry-run create is refused), and releases only once it no longer does.
import { ApiException, CustomObjectsApi } from '@kubernetes/client-node';
import type { Cluster } from '../../localcluster/control-plane.ts';
import { sleep } from './harness.ts';

export interface WriteHold {
  readonly name: string;
  /** Refused writes are answered with this message. */
  readonly message: string;
  release(): Promise<void>;
}

/** `probeSpec`: a spec the resource's schema accepts (the hold is checked with a dry-run create of it). */
export async function holdWrites(cluster: Cluster, target: { group: string; version: string; plural: string; kind: string; probeSpec: unknown }, name: string): Promise<WriteHold> {
  const message = `writes of ${target.plural} held back by a test (${name})`;
  const manifest = `apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata:
  name: ${name}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
      - apiGroups: [${target.group}]
        apiVersions: ["*"]
        operations: [CREATE, UPDATE, DELETE]
        resources: [${target.plural}]
  validations:
    - expression: "false"
      message: ${JSON.stringify(message)}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata:
  name: ${name}
spec:
  policyName: ${name}
  validationActions: [Deny]
`;
  const applied = await cluster.kubectl(['apply', '-f', '-'], { input: manifest });
  if (applied.exitCode !== 0) throw new Error(`kubectl apply of the admission hold: ${applied.stderr}`);
  const custom = cluster.kubeConfig().makeApiClient(CustomObjectsApi);
  // A dry-run create of a throwaway object: refused once the policy is in force, never stored.
  const probe = async (): Promise<'refused' | 'allowed'> => {
    try {
      await custom.createClusterCustomObject({
        group: target.group, version: target.version, plural: target.plural, dryRun: 'All',
        body: { apiVersion: `${target.group}/${target.version}`, kind: target.kind, metadata: { name: `${name}-probe` }, spec: target.probeSpec },
      });
      return 'allowed';
    } catch (e) {
      // Our message: the hold; anything else is another problem.
      if (e instanceof ApiException && String(e.body).includes(message)) return 'refused';
      throw e;
    }
  };
  const until = async (want: 'refused' | 'allowed', what: string) => {
    const deadline = performance.now() + 20_000;
    while ((await probe()) !== want) {
      if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await sleep(50);
    }
  };
  await until('refused', `the admission hold on ${target.plural} to take effect`);
  let released = false;
  return {
    name,
    message,
    async release() {
      if (released) return;
      released = true;
      await cluster.kubectl(['delete', 'validatingadmissionpolicybinding', name, '--ignore-not-found']);
      await cluster.kubectl(['delete', 'validatingadmissionpolicy', name, '--ignore-not-found']);
      await until('allowed', `the admission hold on ${target.plural} to be lifted`);
    },
  };
}
