// charts/fencer installed with `helm install` into the real kube-apiserver: every object is accepted;
// the operator and an agent then run here under the ServiceAccounts the chart created (their tokens),
// which proves the chart's RBAC is enough; what lies beyond it is refused; `helm uninstall` cleans up.
// (No kubelet runs, so the chart's own pods never start: the processes run in this test instead.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoordinationV1Api, CoreV1Api, CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { execa } from 'execa';
import { startAgent } from '../../cli/agent.ts';
import { fromKubeconfigFile } from '../../agent/kube/access.ts';
import { KubeApiError, KubeTransport } from '../../agent/kube/transport.ts';
import { CpsStatusWriter } from '../../agent/cps-client.ts';
import type { CompiledPolicySet } from '../../crds/types.ts';
import { kubeConfigForNode } from '../faults/tokens.ts';
import { createNetns } from '../helpers/netns.ts';
import { chartDir, helm, helmArgs, render, type K8sObject } from '../helpers/chart.ts';
import { testCluster } from './env.ts';
import { converged, cpsApi, cpsTestHooks, FAST_LEASE, getCps, run, settled, testLogger, waitFor, World } from './operator-fixture.ts';
import { apiStatus } from '../helpers/api-status.ts';

const hooks = cpsTestHooks();
const release = `chart-${run}`;
const namespace = `fencer-chart-${run}`;
const fullname = `${release}-fencer`;
// Windows and the dashboards on: their objects are core kinds the apiserver validates too. The
// ServiceMonitor and PrometheusRule need prometheus-operator's CRDs (test/unit/chart.test.ts and
// test/integration/prometheus.test.ts check those).
const values = { 'agent.windows.enabled': true, 'dashboards.enabled': true };

async function helmRun(args: string[]): Promise<{ code: number; out: string }> {
  const r = await execa(helm(), [...args, '--kubeconfig', testCluster().kubeconfigPath], {
    reject: false, all: true, env: { HELM_CACHE_HOME: join(tmpdir(), 'fencer-helm-cache'), HELM_CONFIG_HOME: join(tmpdir(), 'fencer-helm-config'), HELM_DATA_HOME: join(tmpdir(), 'fencer-helm-data') },
  });
  return { code: r.exitCode ?? 1, out: r.all ?? '' };
}

const status = apiStatus;

const resource = (o: K8sObject) => `${o.kind.toLowerCase()}/${o.metadata.name}`;
async function exists(o: K8sObject): Promise<boolean> {
  const r = await testCluster().kubectl(['get', resource(o), ...(o.metadata.namespace ? ['-n', o.metadata.namespace] : []), '-o', 'name']);
  if (r.exitCode !== 0 && !/NotFound/.test(r.stderr)) throw new Error(r.stderr);
  return r.exitCode === 0;
}

/** A kubeconfig file for a KubeConfig (startAgent, like `fencer agent --kubeconfig`, takes a path). */
function kubeconfigFile(kc: KubeConfig, dir: string): string {
  const path = join(dir, 'kubeconfig');
  writeFileSync(path, kc.exportConfig(), { mode: 0o600 });
  return path;
}

test('helm install: every object accepted; operator and agent work under the chart\'s ServiceAccounts and nothing more; helm uninstall cleans up', async (t) => {
  const objects = render({ release, namespace, set: values }).filter((o) => o.kind !== 'CustomResourceDefinition');
  const installed = await helmRun(['install', release, chartDir, '--namespace', namespace, '--create-namespace', ...helmArgs({ set: values })]);
  let uninstalled = false;
  t.after(async () => {
    if (!uninstalled) await helmRun(['uninstall', release, '--namespace', namespace]);
    await testCluster().kubectl(['delete', 'namespace', namespace, '--ignore-not-found', '--wait=false']);
  });
  assert.equal(installed.code, 0, installed.out);
  assert.match(installed.out, /STATUS: deployed/);
  for (const o of objects) assert.ok(await exists(o), `${resource(o)} was not created`);
  assert.ok(objects.some((o) => o.kind === 'Service' && o.metadata.name === 'npm-metrics-cluster-service'));
  assert.ok(await exists({ apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition', metadata: { name: 'compiledpolicysets.fencer.dev' } }));

  // The chart's settings, as the operator pod would read them from its environment.
  const settings = (await hooks.api.core.readNamespacedConfigMap({ namespace, name: `${fullname}-settings` })).data!;
  assert.equal(settings.FENCER_NAMESPACE, namespace);

  // The operator, under the operator ServiceAccount the chart created.
  const opKc = await testCluster().kubeConfigFor(namespace, `${fullname}-operator`);
  const opCore = opKc.makeApiClient(CoreV1Api);
  await waitFor('the operator binding to take effect', async () => (await status(() => opCore.listPodForAllNamespaces({ limit: 1 }))) === 200, 10_000, 100);
  const w = new World(t, 'chart');
  const nodes = [await w.node('n1'), await w.node('n2')];
  const apps = await w.namespace('apps');
  await w.pod({ namespace: apps, name: 'web', node: nodes[0], labels: { app: 'web' } });
  await w.pod({ namespace: apps, name: 'client', node: nodes[1], labels: { role: 'client' } });
  await w.policy(apps, { metadata: { name: 'web' }, spec: { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ _from: [{ podSelector: { matchLabels: { role: 'client' } } }] }] } });
  const op = await w.operator({ kubeConfig: opKc, namespace: settings.FENCER_NAMESPACE, leaseName: settings.FENCER_LEASE_NAME, identity: `${fullname}-operator-abc12`, lease: FAST_LEASE, log: testLogger() });
  await converged(hooks.api, nodes);
  await settled(op);
  const lease = await hooks.api.kc.makeApiClient(CoordinationV1Api).readNamespacedLease({ namespace, name: settings.FENCER_LEASE_NAME });
  assert.equal(lease.spec?.holderIdentity, `${fullname}-operator-abc12`);

  // An agent, under the agent ServiceAccount: it watches its own CPS, enforces it in a network
  // namespace and writes its status.
  // A token bound to a pod on the agent's node, as the DaemonSet's projected token is: the chart's
  // ValidatingAdmissionPolicy lets an agent write only its own node's status.
  const agentKc = await kubeConfigForNode(hooks.api.kc, namespace, `${fullname}-agent`, nodes[0]);
  const agentCustom = agentKc.makeApiClient(CustomObjectsApi);
  await waitFor('the agent binding to take effect', async () => (await status(() => agentCustom.listClusterCustomObject({ ...cpsApi, limit: 1 }))) === 200, 10_000, 100);
  const dir = mkdtempSync(join(tmpdir(), 'fencer-chart-'));
  const netns = createNetns('fencer-ch');
  t.after(() => rmSync(dir, { recursive: true, force: true })); // the netns goes when the process exits
  const agent = await startAgent({
    nodeName: nodes[0], kubeconfig: kubeconfigFile(agentKc, dir), netns: netns.name, metricsPort: 0, driftSeconds: 0,
    hookPosition: 'first', iptablesMode: 'auto', log: testLogger(),
  });
  let agentStopped = false;
  const stopAgent = async () => {
    if (!agentStopped) await agent.stop();
    agentStopped = true;
  };
  t.after(stopAgent);
  const enforced = await waitFor('the agent to report enforcing its CompiledPolicySet', async () => {
    const cps = await getCps(hooks.api.custom, nodes[0]);
    const inSync = cps?.status?.conditions?.find((c) => c.type === 'InSync');
    return cps && cps.status?.observedGeneration === cps.metadata.generation && inSync?.status === 'True' ? cps : undefined;
  }, 20_000, 100);
  assert.equal(enforced.status?.appliedHash, enforced.spec.contentHash);
  assert.match(netns.exec(['ipset', 'list', '-n']), /\S/, 'the sets are in the kernel');

  // The same status write through CpsStatusWriter directly, as the agent of node 1 for node 2: refused.
  const other = (await agentCustom.getClusterCustomObject({ ...cpsApi, name: nodes[1] })) as CompiledPolicySet;
  const agentTransport = new KubeTransport(fromKubeconfigFile(kubeconfigFile(agentKc, dir)));
  t.after(() => agentTransport.close());
  await assert.rejects(new CpsStatusWriter(agentTransport).writeStatus(other, { observedGeneration: other.metadata.generation, appliedHash: other.spec.contentHash, agent: 'chart-test' }),
    (e: unknown) => e instanceof KubeApiError && e.code === 403 && /its own node/.test(e.message));

  // Beyond the rules: refused.
  const refusals: Array<[string, number, () => Promise<unknown>]> = [
    ['agent: update a CompiledPolicySet spec', 403, () => agentCustom.replaceClusterCustomObject({ ...cpsApi, name: nodes[1], body: other })],
    ['agent: delete a CompiledPolicySet', 403, () => agentCustom.deleteClusterCustomObject({ ...cpsApi, name: nodes[1] })],
    ['agent: patch a CompiledPolicySet status', 403, () => agentCustom.patchClusterCustomObjectStatus({ ...cpsApi, name: nodes[1], body: [{ op: 'add', path: '/status/agent', value: 'x' }] })],
    ['agent: list pods', 403, () => agentKc.makeApiClient(CoreV1Api).listPodForAllNamespaces({ limit: 1 })],
    ['operator: list secrets', 403, () => opCore.listSecretForAllNamespaces({ limit: 1 })],
    ['operator: read a secret in its namespace', 403, () => opCore.readNamespacedSecret({ namespace, name: 'anything' })],
    ['operator: delete a pod', 403, () => opCore.deleteNamespacedPod({ namespace: apps, name: 'web' })],
    ['operator: leases outside its namespace', 403, () => opKc.makeApiClient(CoordinationV1Api).listNamespacedLease({ namespace: 'kube-system' })],
  ];
  for (const [what, code, call] of refusals) assert.equal(await status(call), code, what);

  await stopAgent();
  await op.stop();
  const removed = await helmRun(['uninstall', release, '--namespace', namespace, '--wait']);
  uninstalled = true;
  assert.equal(removed.code, 0, removed.out);
  for (const o of objects) assert.equal(await exists(o), false, `${resource(o)} is still there`);
  // Helm never deletes CRDs (nor the CompiledPolicySets they hold): deleting them is a deliberate step.
  assert.ok(await exists({ apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition', metadata: { name: 'compiledpolicysets.fencer.dev' } }));
});
