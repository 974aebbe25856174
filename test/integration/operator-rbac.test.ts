// The operator runs under a ServiceAccount holding exactly the RBAC in operator/rbac.yaml (the rules
// the chart grants): it lists, compiles, writes CompiledPolicySets, holds its Lease and emits Events,
// and anything beyond those rules is refused.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as yaml from 'js-yaml';
import { CoordinationV1Api, CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { NOT_HONOURED_REASON } from '../../operator/events.ts';
import { testCluster } from './env.ts';
import { converged, kube, listCps, run, settled, waitFor, World } from './operator-fixture.ts';
import { cpsTestHooks } from './operator-fixture.ts';
import { apiStatus } from '../helpers/api-status.ts';

const hooks = cpsTestHooks();


interface Doc { kind: string; metadata: { name: string; namespace?: string }; roleRef?: { name: string }; subjects?: Array<{ name: string; namespace: string }> }

/** operator/rbac.yaml with this run's names: its own namespace instead of kube-system, suffixed cluster-wide names. */
function rbacFor(namespace: string, suffix: string): string {
  const docs = yaml.loadAll(readFileSync(new URL('../../operator/rbac.yaml', import.meta.url), 'utf8')) as Doc[];
  for (const d of docs) {
    d.metadata.name = `${d.metadata.name}-${suffix}`;
    if (d.metadata.namespace) d.metadata.namespace = namespace;
    if (d.roleRef) d.roleRef.name = `${d.roleRef.name}-${suffix}`;
    for (const s of d.subjects ?? []) Object.assign(s, { name: `${s.name}-${suffix}`, namespace });
  }
  return docs.map((d) => yaml.dump(d)).join('---\n');
}

const refused = apiStatus;

test('the operator works under the ServiceAccount and RBAC the chart grants, and nothing more', async (t) => {
  const w = new World(t, 'rbac');
  const home = await w.namespace('home');
  const manifest = rbacFor(home, run);
  const applied = await testCluster().kubectl(['apply', '-f', '-'], { input: manifest });
  assert.equal(applied.exitCode, 0, applied.stderr);
  t.after(async () => {
    await testCluster().kubectl(['delete', '--ignore-not-found', '-f', '-'], { input: manifest });
  });
  const saKc: KubeConfig = await testCluster().kubeConfigFor(home, `fencer-operator-${run}`);
  const saCore = saKc.makeApiClient(CoreV1Api);
  // The authorizer learns of new bindings through its own watch.
  await waitFor('the bindings to take effect', async () => (await refused(() => saCore.listPodForAllNamespaces({ limit: 1 }))) === 200, 10_000, 100);

  const nodes = [await w.node('n1'), await w.node('n2')];
  const ns = await w.namespace('apps');
  await w.pod({ namespace: ns, name: 'web', node: nodes[0], labels: { app: 'web' } });
  await w.pod({ namespace: ns, name: 'client', node: nodes[1], labels: { role: 'client' } });
  await w.policy(ns, {
    metadata: { name: 'web' },
    spec: { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ _from: [{ podSelector: { matchLabels: { role: 'client' } } }, { ipBlock: { cidr: 'fd00::/8' } }] }] },
  });

  const op = await w.operator({ kubeConfig: saKc, namespace: home, leaseName: 'fencer-operator' });
  await converged(hooks.api, nodes);
  await settled(op);
  await waitFor('the Event on the policy', async () => (await hooks.api.core.listNamespacedEvent({ namespace: ns })).items.some((e) => e.reason === NOT_HONOURED_REASON));
  const lease = await hooks.api.kc.makeApiClient(CoordinationV1Api).readNamespacedLease({ namespace: home, name: 'fencer-operator' });
  assert.equal(lease.spec?.holderIdentity, op.options.identity);

  // A node deletion: the operator deletes the CompiledPolicySet itself.
  await hooks.api.k.labelPod(ns, 'client', { role: 'gone' });
  await hooks.api.k.deleteNode(nodes[1]);
  await converged(hooks.api, [nodes[0]]);
  await waitFor('the CompiledPolicySet of the deleted node to go', async () => !(await listCps(hooks.api.custom)).has(nodes[1]));

  // Nothing beyond the rules.
  const saCoordination = saKc.makeApiClient(CoordinationV1Api);
  assert.equal(await refused(() => saCore.listSecretForAllNamespaces({ limit: 1 })), 403, 'secrets');
  assert.equal(await refused(() => saCore.deleteNamespacedPod({ namespace: ns, name: 'web' })), 403, 'deleting pods');
  assert.equal(await refused(() => saCore.patchNamespace({ name: ns, body: [{ op: 'add', path: '/metadata/labels/x', value: 'y' }] })), 403, 'changing namespaces');
  assert.equal(await refused(() => saCoordination.listNamespacedLease({ namespace: 'kube-system' })), 403, 'leases elsewhere');
});
