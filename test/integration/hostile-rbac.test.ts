// Security against the real apiserver, with the chart's own ServiceAccounts, RBAC and
// ValidatingAdmissionPolicy (charts/fencer, rendered by the pinned helm):
//  - the agent reads CompiledPolicySets and patches their status, nothing more: no pods, secrets or
//    policies, never a spec, no create or delete;
//  - with a token bound to a pod on node A (the apiserver adds the node's name to the token's user
//    extra), the agent may patch the status of A's CompiledPolicySet and is refused B's; a token bound
//    to no pod is refused both; a real agent runs under the bound token end to end;
//  - the operator cannot read secrets or exec into pods;
//  - the agent's and the operator's metrics and health endpoints reveal no credentials.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as yaml from 'js-yaml';
import { ApiException, AuthenticationV1Api, AuthorizationV1Api, CoreV1Api, CustomObjectsApi, NetworkingV1Api, PatchStrategy, setHeaderOptions, type KubeConfig } from '@kubernetes/client-node';
import { startAgent } from '../../cli/agent.ts';
import type { CompiledPolicySet } from '../../crds/types.ts';
import { cpsObject } from '../../operator/cps-object.ts';
import { PolicyCompiler } from '../../operator/compile/compiler.ts';
import { startOperator } from '../../operator/operator.ts';
import { silentLogger } from '../../runtime/log.ts';
import { kubelet } from '../../localcluster/kubelet.ts';
import { cpsApi, getCps, waitFor } from '../faults/harness.ts';
import { kubeConfigForNode, nodeBoundToken, tokenKubeConfig } from '../faults/tokens.ts';
import { recordRow } from '../faults/report.ts';
import { createNetns } from '../helpers/netns.ts';
import { testCluster } from './env.ts';

const run = randomBytes(2).toString('hex');
const NS = `fencer-sec-${run}`;
const RELEASE = `fencer-${run}`;
const AGENT_SA = `${RELEASE}-agent`;
const OPERATOR_SA = `${RELEASE}-operator`;
const CHART = fileURLToPath(new URL('../../charts/fencer', import.meta.url));
const KINDS = new Set(['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding', 'ValidatingAdmissionPolicy', 'ValidatingAdmissionPolicyBinding']);
const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

interface Doc { kind: string; metadata: { name: string } }

/** The chart's identities and admission policy for this release, as `helm install` would create them. */
function chartSecurityObjects(binDir: string): Doc[] {
  const out = execFileSync(join(binDir, 'helm'), ['template', RELEASE, CHART, '--namespace', NS, '--kube-version', '1.34.4'], { encoding: 'utf8' });
  return (yaml.loadAll(out) as Array<Doc | null>).filter((d): d is Doc => !!d && KINDS.has(d.kind));
}

async function code(call: () => Promise<unknown>): Promise<{ code: number; message: string }> {
  try {
    await call();
    return { code: 200, message: '' };
  } catch (e) {
    if (!(e instanceof ApiException)) throw e;
    let message = String(e.body);
    try { message = (JSON.parse(String(e.body)) as { message: string }).message; } catch { /* raw */ }
    return { code: e.code, message };
  }
}

async function token(core: CoreV1Api, sa: string): Promise<string> {
  const r = await core.createNamespacedServiceAccountToken({ namespace: NS, name: sa, body: { spec: { audiences: [], expirationSeconds: 3600 } } });
  const t = r.status?.token;
  if (!t) throw new Error(`TokenRequest for ${sa} returned no token`);
  return t;
}

test("the chart's agent and operator identities can do what they need and nothing more; an agent writes only its own node's status", async (t) => {
  const cluster = testCluster();
  await cluster.installCrds();
  const admin = cluster.kubeConfig();
  const core = admin.makeApiClient(CoreV1Api);
  const custom = admin.makeApiClient(CustomObjectsApi);
  const k = kubelet(admin);
  const nodes = [`sec1-${run}`, `sec2-${run}`];
  const dir = mkdtempSync(join(tmpdir(), 'fencer-sec-'));
  const docs = chartSecurityObjects(cluster.binDir);
  const manifest = docs.map((d) => yaml.dump(d)).join('---\n');
  const netns = createNetns('fsec');
  const stops: Array<() => Promise<unknown>> = [];
  try {
    await k.createNamespace(NS);
    const applied = await cluster.kubectl(['apply', '-f', '-'], { input: manifest });
    assert.equal(applied.exitCode, 0, applied.stderr);
    assert.ok(docs.some((d) => d.kind === 'ValidatingAdmissionPolicy'), 'the chart ships the admission policy');
    for (const [i, n] of nodes.entries()) {
      await k.createNode(n, `10.${90 + i}.0.0/24`);
      const node = await core.readNode({ name: n });
      const spec = PolicyCompiler.compile({ namespaces: [], pods: [], policies: [], nodes: [node] }).get(n)!;
      await custom.createClusterCustomObject({ ...cpsApi, body: cpsObject(spec) });
    }
    // The agent's pod on node 1 (only its binding matters: the token carries its node).
    const boundKc = await kubeConfigForNode(admin, NS, AGENT_SA, nodes[0]);
    const agentPod = (await core.listNamespacedPod({ namespace: NS })).items[0].metadata!.name!;
    const unboundKc = tokenKubeConfig(admin, await token(core, AGENT_SA), 'agent-unbound');
    const operatorToken = await token(core, OPERATOR_SA);
    const operatorKc = tokenKubeConfig(admin, operatorToken, 'operator');
    // What the apiserver makes of the bound token.
    const extra = await selfExtra(boundKc);
    assert.deepEqual(extra['authentication.kubernetes.io/node-name'], [nodes[0]], 'the bound token carries its node');

    // The authorizer learns of new bindings through its own watch.
    const agentCustom = boundKc.makeApiClient(CustomObjectsApi);
    await waitFor('the bindings to take effect', async () => (await code(() => agentCustom.listClusterCustomObject({ ...cpsApi, limit: 1 }))).code === 200, 10_000, 100);

    // ---- Agent: RBAC
    const agentCore = boundKc.makeApiClient(CoreV1Api);
    const agentNet = boundKc.makeApiClient(NetworkingV1Api);
    const own = (await getCps(admin, nodes[0]))!;
    // What the agent sends: a merge patch of the status onto the version it read.
    const statusPatch = (custom: CustomObjectsApi, c: CompiledPolicySet, note: string) =>
      custom.patchClusterCustomObjectStatus({ ...cpsApi, name: c.metadata.name, body: { metadata: { resourceVersion: c.metadata.resourceVersion }, status: { agent: note, conditions: [] } } }, mergePatch);
    const agentChecks: Array<[string, () => Promise<unknown>, number]> = [
      ['list CompiledPolicySets', () => agentCustom.listClusterCustomObject({ ...cpsApi }), 200],
      ['get its CompiledPolicySet', () => agentCustom.getClusterCustomObject({ ...cpsApi, name: nodes[0] }), 200],
      ['list pods', () => agentCore.listPodForAllNamespaces({ limit: 1 }), 403],
      ['list secrets', () => agentCore.listSecretForAllNamespaces({ limit: 1 }), 403],
      ['get a secret', () => agentCore.readNamespacedSecret({ namespace: NS, name: 'any' }), 403],
      ['list namespaces', () => agentCore.listNamespace({ limit: 1 }), 403],
      ['list NetworkPolicies', () => agentNet.listNetworkPolicyForAllNamespaces({ limit: 1 }), 403],
      ['update a spec', () => agentCustom.replaceClusterCustomObject({ ...cpsApi, name: nodes[0], body: own }), 403],
      ['update a status (it may only patch one)', () => agentCustom.replaceClusterCustomObjectStatus({ ...cpsApi, name: nodes[0], body: { ...own, status: { agent: 'x' } } }), 403],
      ['create a CompiledPolicySet', () => agentCustom.createClusterCustomObject({ ...cpsApi, body: { ...cpsObject(own.spec), metadata: { name: `x-${run}` } } }), 403],
      ['delete a CompiledPolicySet', () => agentCustom.deleteClusterCustomObject({ ...cpsApi, name: nodes[1] }), 403],
    ];
    const rbac: string[] = [];
    for (const [what, call, want] of agentChecks) {
      const got = await code(call);
      if (got.code !== want) rbac.push(`agent: ${what}: ${got.code}, expected ${want} ${got.message}`);
    }

    // ---- Agent: admission, its own node's status only
    // The apiserver loads admission policies through its own watch: wait until this one bites.
    let otherStatus = { code: 0, message: '' };
    await waitFor('the admission policy to take effect', async () => {
      const latest = (await getCps(admin, nodes[1]))!;
      otherStatus = await code(() => statusPatch(agentCustom, latest, 'bound'));
      return otherStatus.code === 403;
    }, 15_000, 200).catch(() => undefined);
    const ownStatus = await code(async () => statusPatch(agentCustom, (await getCps(admin, nodes[0]))!, 'bound'));
    const unboundCustom = unboundKc.makeApiClient(CustomObjectsApi);
    const fresh = (await getCps(admin, nodes[0]))!;
    const unboundStatus = await code(() => statusPatch(unboundCustom, fresh, 'unbound'));
    t.diagnostic(`own node's status: ${ownStatus.code}; other node's: ${otherStatus.code} "${otherStatus.message}"; unbound token: ${unboundStatus.code}`);

    // ---- A real agent under the bound token, enforcing node 1 in a network namespace.
    // As in the DaemonSet's pod: the token is a file the kubelet rotates, read by the agent's client.
    const kubeconfigPath = join(dir, 'agent.kubeconfig');
    const tokenPath = join(dir, 'token');
    const oldToken = (boundKc.getCurrentUser() as { token: string }).token;
    writeFileSync(tokenPath, oldToken, { mode: 0o600 });
    const exported = JSON.parse(boundKc.exportConfig()) as { users: Array<{ user: Record<string, unknown> }> };
    exported.users[0].user = { tokenFile: 'token' };
    writeFileSync(kubeconfigPath, JSON.stringify(exported), { mode: 0o600 });
    const agent = await startAgent({ nodeName: nodes[0], kubeconfig: kubeconfigPath, netns: netns.name, metricsPort: 0, metricsHost: '127.0.0.1', driftSeconds: 0, hookPosition: 'first', iptablesMode: 'auto', log: silentLogger() });
    stops.push(() => agent.stop());
    const enforced = await waitFor('the agent to report under its bound token', async () => {
      const c = await getCps(admin, nodes[0]);
      return c?.status?.appliedHash === c?.spec.contentHash && c?.status?.observedGeneration === c?.metadata.generation ? c : undefined;
    }, 15_000, 100);
    const agentEndpoints = [await fetchText(agent.metricsPort!, '/node-metrics'), await fetchText(agent.metricsPort!, '/healthz')];

    // ---- Operator
    const opCore = operatorKc.makeApiClient(CoreV1Api);
    await waitFor('the operator bindings to take effect', async () => (await code(() => opCore.listPodForAllNamespaces({ limit: 1 }))).code === 200, 10_000, 100);
    const operatorChecks: Array<[string, () => Promise<unknown>, number]> = [
      ['list pods', () => opCore.listPodForAllNamespaces({ limit: 1 }), 200],
      ['list secrets', () => opCore.listSecretForAllNamespaces({ limit: 1 }), 403],
      ['get a secret', () => opCore.readNamespacedSecret({ namespace: NS, name: 'any' }), 403],
      ['list configmaps', () => opCore.listConfigMapForAllNamespaces({ limit: 1 }), 403],
      ['exec into a pod', () => opCore.connectPostNamespacedPodExec({ namespace: NS, name: agentPod, command: 'sh' }), 403],
      ['create a pod', () => opCore.createNamespacedPod({ namespace: NS, body: { metadata: { name: 'x' }, spec: { containers: [{ name: 'c', image: 'i' }] } } }), 403],
      ['delete a pod', () => opCore.deleteNamespacedPod({ namespace: NS, name: agentPod }), 403],
      ['create a ServiceAccount token', () => opCore.createNamespacedServiceAccountToken({ namespace: NS, name: AGENT_SA, body: { spec: { audiences: [] } } }), 403],
      ['update a node', () => opCore.patchNode({ name: nodes[0], body: [{ op: 'add', path: '/metadata/labels/x', value: 'y' }] }), 403],
    ];
    for (const [what, call, want] of operatorChecks) {
      const got = await code(call);
      if (got.code !== want) rbac.push(`operator: ${what}: ${got.code}, expected ${want} ${got.message}`);
    }
    // ---- Token rotation: a new token bound to another pod on the node, renamed over the file as
    // the kubelet does; the old token's pod goes, so the apiserver refuses it from then on. The
    // agent's next write must still land (its client reads the file again when refused).
    const newToken = await nodeBoundToken(admin, NS, AGENT_SA, nodes[0], `${AGENT_SA}-rotated`);
    writeFileSync(`${tokenPath}.new`, newToken, { mode: 0o600 });
    renameSync(`${tokenPath}.new`, tokenPath);
    await core.deleteNamespacedPod({ namespace: NS, name: agentPod, gracePeriodSeconds: 0 });
    const oldCustom = tokenKubeConfig(admin, oldToken, 'agent-old').makeApiClient(CustomObjectsApi);
    await waitFor('the apiserver to refuse the old token', async () => (await code(() => oldCustom.getClusterCustomObject({ ...cpsApi, name: nodes[0] }))).code === 401, 30_000, 250);
    await admin.makeApiClient(CustomObjectsApi).patchClusterCustomObjectStatus({ ...cpsApi, name: nodes[0], body: { status: { agent: 'cleared-by-test' } } }, mergePatch);
    const rewritten = await waitFor('the agent to restore its status under the rotated token', async () => {
      const c = await getCps(admin, nodes[0]);
      return c?.status?.agent && c.status.agent !== 'cleared-by-test' && c.status.appliedHash === c.spec.contentHash ? c : undefined;
    }, 20_000, 100);
    const rotation = `the old token refused with 401, then a status wiped by hand was written back by the agent (generation ${rewritten.status?.observedGeneration}) under the new token`;

    // SubjectAccessReviews for what a request cannot show without side effects.
    const sar = admin.makeApiClient(AuthorizationV1Api);
    const can = async (sa: string, verb: string, resource: string, subresource?: string, group = '') =>
      (await sar.createSubjectAccessReview({ body: { spec: { user: `system:serviceaccount:${NS}:${sa}`, groups: ['system:serviceaccounts', `system:serviceaccounts:${NS}`, 'system:authenticated'], resourceAttributes: { verb, resource, subresource, group, namespace: NS } } } })).status?.allowed === true;
    for (const [sa, verb, resource, sub, group] of [
      [OPERATOR_SA, 'get', 'pods', 'exec', ''], [OPERATOR_SA, 'create', 'pods', 'exec', ''], [OPERATOR_SA, 'create', 'pods', 'attach', ''], [OPERATOR_SA, 'create', 'pods', 'portforward', ''],
      [OPERATOR_SA, 'watch', 'secrets', undefined, ''], [OPERATOR_SA, 'impersonate', 'serviceaccounts', undefined, ''], [OPERATOR_SA, 'escalate', 'clusterroles', undefined, 'rbac.authorization.k8s.io'], [OPERATOR_SA, 'bind', 'clusterroles', undefined, 'rbac.authorization.k8s.io'],
      [AGENT_SA, 'update', 'compiledpolicysets', 'status', 'fencer.dev'], [AGENT_SA, 'patch', 'compiledpolicysets', undefined, 'fencer.dev'], [AGENT_SA, 'get', 'pods', 'exec', ''], [AGENT_SA, 'watch', 'secrets', undefined, ''],
    ] as Array<[string, string, string, string | undefined, string]>) {
      if (await can(sa, verb, resource, sub, group)) rbac.push(`${sa} may ${verb} ${resource}${sub ? `/${sub}` : ''}`);
    }
    const op = await startOperator({ kubeConfig: operatorKc, namespace: NS, leaseName: 'fencer-operator', identity: `sec-${run}`, metricsPort: 0, metricsHost: '127.0.0.1', log: silentLogger() });
    stops.push(() => op.stop());
    const operatorEndpoints = [await fetchText(op.httpPort!, '/cluster-metrics'), await fetchText(op.httpPort!, '/healthz'), await fetchText(op.httpPort!, '/readyz')];
    const secrets = [(boundKc.getCurrentUser() as { token: string }).token, operatorToken, 'BEGIN', 'PRIVATE KEY', 'password', kubeconfigPath, 'Bearer'];
    const leaks = [...agentEndpoints, ...operatorEndpoints].flatMap((body) => secrets.filter((s) => body.includes(s)).map((s) => s.slice(0, 12)));

    recordRow({
      id: '10-rbac-agent',
      fault: "the agent's identity (the chart's ServiceAccount, ClusterRole and binding) trying more than it needs",
      injection: `requests with a token of the chart's agent ServiceAccount: ${agentChecks.map((c) => c[0]).join(', ')}; SubjectAccessReviews for update status, patch spec, exec, watch secrets`,
      observed: `CompiledPolicySets readable, everything else refused with 403 (${rbac.filter((r) => r.startsWith('agent') || r.startsWith(AGENT_SA)).length} exceptions); a real agent ran under the pod-bound token (a token file) and reported generation ${enforced.status?.observedGeneration}; the token rotated (a new pod-bound token renamed over the file, the old one's pod deleted): ${rotation}; its /node-metrics and /healthz reveal no credential (${leaks.length} found)`,
      convergeMs: null, probes: null,
      statesLost: rbac.filter((r) => r.startsWith('agent') || r.startsWith(AGENT_SA)).length + leaks.length,
      test: 'test/integration/hostile-rbac.test.ts',
    });
    recordRow({
      id: '10-admission-own-node',
      fault: "an agent updating another node's CompiledPolicySet status",
      injection: `the chart's ValidatingAdmissionPolicy (CEL on request.userInfo.extra["authentication.kubernetes.io/node-name"]); TokenRequest bound to a pod on node 1, and one bound to nothing`,
      observed: `own node's status: ${ownStatus.code}; the other node's: ${otherStatus.code} ("${otherStatus.message.replace(/^.*denied request: /, '').replaceAll(nodes[0], 'node-1').replaceAll(nodes[1], 'node-2').slice(0, 160)}"); own node with an unbound token: ${unboundStatus.code}`,
      convergeMs: null, probes: null,
      statesLost: (ownStatus.code === 200 ? 0 : 1) + (otherStatus.code === 403 ? 0 : 1) + (unboundStatus.code === 403 ? 0 : 1),
      test: 'test/integration/hostile-rbac.test.ts',
    });
    recordRow({
      id: '10-rbac-operator',
      fault: "the operator's identity (the chart's ServiceAccount and roles) trying secrets, exec and more",
      injection: `requests with a token of the chart's operator ServiceAccount: ${operatorChecks.map((c) => c[0]).join(', ')}; SubjectAccessReviews for exec, attach, port-forward, watch secrets, impersonate, escalate, bind`,
      observed: `pods listable, everything else refused (${rbac.filter((r) => r.startsWith('operator') || r.startsWith(OPERATOR_SA)).length} exceptions); an operator ran under it and its /cluster-metrics, /healthz, /readyz reveal no credential (${leaks.length} found)`,
      convergeMs: null, probes: null,
      statesLost: rbac.filter((r) => r.startsWith('operator') || r.startsWith(OPERATOR_SA)).length + leaks.length,
      test: 'test/integration/hostile-rbac.test.ts',
    });
    assert.deepEqual(rbac, []);
    assert.deepEqual(leaks, []);
    assert.equal(ownStatus.code, 200, ownStatus.message);
    assert.equal(otherStatus.code, 403, otherStatus.message);
    assert.match(otherStatus.message, /its own node/);
    assert.equal(unboundStatus.code, 403, unboundStatus.message);
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
    netns.destroy();
    await cluster.kubectl(['delete', '--ignore-not-found', '--wait=false', '-f', '-'], { input: manifest });
    await k.deleteNamespace(NS).catch(() => undefined);
    for (const n of nodes) {
      await k.deleteNode(n).catch(() => undefined);
      await custom.deleteClusterCustomObject({ ...cpsApi, name: n }).catch(() => undefined);
    }
    rmSync(dir, { recursive: true, force: true });
  }
});

async function fetchText(port: number, path: string): Promise<string> {
  return (await fetch(`http://127.0.0.1:${port}${path}`)).text();
}

/** The user extra the apiserver attaches to this KubeConfig's credentials (SelfSubjectReview). */
async function selfExtra(kc: KubeConfig): Promise<Record<string, string[]>> {
  const r = await kc.makeApiClient(AuthenticationV1Api).createSelfSubjectReview({ body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' } });
  return (r.status?.userInfo?.extra ?? {}) as Record<string, string[]>;
}

