// Proves the test control plane is a real one: the apiserver enforces the CompiledPolicySet CRD's
// schema, subresources, printer columns, generations, watches, optimistic concurrency and RBAC, and
// the kubelet stand-in's pods carry their IPs.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import {
  ApiException,
  CoreV1Api,
  CustomObjectsApi,
  ListWatch,
  PatchStrategy,
  RbacAuthorizationV1Api,
  Watch,
  setHeaderOptions,
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
} from '@kubernetes/client-node';
import { CPS_API_VERSION, CPS_GROUP, CPS_KIND, CPS_PLURAL, CPS_VERSION, type CompiledPolicySet, type CompiledPolicySetSpec } from '../../crds/types.ts';
import { kubelet } from '../../localcluster/kubelet.ts';
import { testCluster } from './env.ts';

const run = randomBytes(3).toString('hex');
const api = { group: CPS_GROUP, version: CPS_VERSION, plural: CPS_PLURAL };
const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

let kc: KubeConfig;
let custom: CustomObjectsApi;

before(async () => {
  kc = testCluster().kubeConfig();
  custom = kc.makeApiClient(CustomObjectsApi);
  await testCluster().installCrds();
});

function validSpec(nodeName: string): CompiledPolicySetSpec {
  return {
    nodeName,
    contentHash: `sha256:${createHash('sha256').update(nodeName).digest('hex')}`,
    podCIDRs: ['10.244.1.0/24'],
    policies: [],
    ipSets: [],
    targets: [],
    diagnostics: [],
    counts: { policies: 0, rules: 0, sets: 0, entries: 0, pods: 0 },
  };
}

function cps(name: string, spec: CompiledPolicySetSpec = validSpec(name)): CompiledPolicySet {
  return { apiVersion: CPS_API_VERSION, kind: CPS_KIND, metadata: { name }, spec };
}

/** Creates a CPS named uniquely for this run and deletes it when the test ends. */
async function createCps(t: { after(fn: () => Promise<void>): void }, label: string, spec?: (name: string) => CompiledPolicySetSpec): Promise<CompiledPolicySet> {
  const name = `cp-test-${label}-${run}`;
  t.after(() => deleteCps(name));
  return (await custom.createClusterCustomObject({ ...api, body: cps(name, spec?.(name)) })) as CompiledPolicySet;
}

async function deleteCps(name: string): Promise<void> {
  try {
    await custom.deleteClusterCustomObject({ ...api, name });
  } catch (e) {
    if (!(e instanceof ApiException && e.code === 404)) throw e;
  }
}

async function getCps(name: string, client = custom): Promise<CompiledPolicySet> {
  return (await client.getClusterCustomObject({ ...api, name })) as CompiledPolicySet;
}

/** The Status message of a refused request. */
function statusMessage(e: ApiException<unknown>): string {
  try {
    return (JSON.parse(String(e.body)) as { message?: string }).message ?? String(e.body);
  } catch {
    return String(e.body);
  }
}

async function refusal(promise: Promise<unknown>): Promise<{ code: number; message: string }> {
  try {
    await promise;
  } catch (e) {
    if (e instanceof ApiException) return { code: e.code, message: statusMessage(e) };
    throw e;
  }
  assert.fail('the request was accepted');
}

const inSync = (generation: number) => ({
  observedGeneration: generation,
  appliedHash: 'sha256:' + 'a'.repeat(64),
  appliedAt: '2026-01-01T00:00:00Z',
  agent: 'fencer-agent-test',
  conditions: [{ type: 'InSync' as const, status: 'True' as const, reason: 'Applied', message: 'rules match', lastTransitionTime: '2026-01-01T00:00:00Z' }],
});

test('the apiserver enforces the CRD schema and names the offending field', async () => {
  const name = `cp-test-invalid-${run}`;
  const badHash = cps(name, { ...validSpec(name), contentHash: 'md5:1234' });
  const hash = await refusal(custom.createClusterCustomObject({ ...api, body: badHash }));
  assert.equal(hash.code, 422);
  assert.match(hash.message, /spec\.contentHash/);
  assert.match(hash.message, /should match/);

  const badKind = cps(name, { ...validSpec(name), ipSets: [{ name: 'i-0123456789abcdef', kind: 'mac' as never, origin: 'test', members: [] }] });
  const kind = await refusal(custom.createClusterCustomObject({ ...api, body: badKind }));
  assert.equal(kind.code, 422);
  assert.match(kind.message, /spec\.ipSets\[0\]\.kind/);

  const { counts: _omitted, ...withoutCounts } = validSpec(name);
  const missing = await refusal(custom.createClusterCustomObject({ ...api, body: cps(name, withoutCounts as CompiledPolicySetSpec) }));
  assert.equal(missing.code, 422);
  assert.match(missing.message, /spec\.counts: Required value/);

  await assert.rejects(getCps(name), (e: unknown) => e instanceof ApiException && e.code === 404);
});

test('a valid CompiledPolicySet is stored and read back unchanged', async (t) => {
  const created = await createCps(t, 'valid');
  const name = created.metadata.name;
  assert.equal(created.metadata.generation, 1);
  const read = await getCps(name);
  assert.equal(read.apiVersion, CPS_API_VERSION);
  assert.equal(read.kind, CPS_KIND);
  assert.deepEqual(read.spec, validSpec(name));
  assert.equal(read.status, undefined);
});

test('kubectl get cps prints the printer columns', async (t) => {
  const created = await createCps(t, 'columns', (name) => ({ ...validSpec(name), counts: { policies: 2, rules: 5, sets: 3, sharedSets: 1, entries: 7, pods: 1 } }));
  const name = created.metadata.name;
  const before = await testCluster().kubectl(['get', 'cps', name]);
  assert.equal(before.exitCode, 0, before.stderr);
  const [header, row] = table(before.stdout);
  assert.deepEqual(header, ['NAME', 'NODE', 'POLICIES', 'RULES', 'SETS', 'SHARED', 'ENTRIES', 'GENERATION', 'APPLIED', 'INSYNC', 'AGE']);
  assert.deepEqual(row.slice(0, 10), [name, name, '2', '5', '3', '1', '7', '1', '', '']);

  await custom.replaceClusterCustomObjectStatus({ ...api, name, body: { ...(await getCps(name)), status: inSync(1) } });
  const after = await testCluster().kubectl(['get', 'compiledpolicysets.fencer.dev', name]);
  assert.equal(after.exitCode, 0, after.stderr);
  assert.deepEqual(table(after.stdout)[1].slice(7, 10), ['1', '1', 'True']);
});

test('kubectl get aset prints what a shard holds, and its set\'s consumers', async (t) => {
  const aset = { group: 'fencer.dev', version: 'v1alpha1', plural: 'addresssets' };
  const name = `p-${randomBytes(8).toString('hex')}-0-0`;
  await custom.createClusterCustomObject({ ...aset, body: {
    apiVersion: 'fencer.dev/v1alpha1', kind: 'AddressSet', metadata: { name },
    spec: { set: name.slice(0, 18), kind: 'ip', origin: 'pods with app=web', epoch: 0, shard: 0, shards: 1, size: 2, nodes: 3, members: ['10.0.0.1', '10.0.0.2'] },
  } });
  t.after(() => custom.deleteClusterCustomObject({ ...aset, name }).catch(() => undefined));
  const got = await testCluster().kubectl(['get', 'aset', name, '-o', 'wide']);
  assert.equal(got.exitCode, 0, got.stderr);
  const [header, row] = table(got.stdout);
  assert.deepEqual(header, ['NAME', 'SET', 'KIND', 'SHARD', 'SHARDS', 'MEMBERS', 'NODES', 'ORIGIN', 'AGE']);
  assert.deepEqual(row.slice(0, 7), [name, name.slice(0, 18), 'ip', '0', '1', '2', '3']);
  const rejected = await testCluster().kubectl(['get', 'fencer']);
  assert.equal(rejected.exitCode, 0, 'both kinds are in the fencer category');
  assert.match(rejected.stdout, new RegExp(`addressset.fencer.dev/${name}`));
});

/** kubectl's table output as cells, cut at the header's column starts (empty cells stay empty). */
function table(output: string): string[][] {
  const [header, ...rows] = output.trimEnd().split('\n');
  const starts = [...header.matchAll(/\S+/g)].map((m) => m.index);
  return [header, ...rows].map((line) => starts.map((start, i) => line.slice(start, starts[i + 1]).trim()));
}

test('status goes through the status subresource without bumping generation; spec changes do', async (t) => {
  const name = (await createCps(t, 'status')).metadata.name;

  const withStatus = (await custom.replaceClusterCustomObjectStatus({ ...api, name, body: { ...(await getCps(name)), status: inSync(1) } })) as CompiledPolicySet;
  assert.equal(withStatus.metadata.generation, 1);
  assert.deepEqual((await getCps(name)).status, inSync(1));

  // Status written through the main resource is dropped; spec written through status is dropped.
  const current = await getCps(name);
  const ignored = (await custom.replaceClusterCustomObject({ ...api, name, body: { ...current, status: { ...inSync(1), agent: 'someone-else' } } })) as CompiledPolicySet;
  assert.equal(ignored.status?.agent, 'fencer-agent-test');
  assert.equal(ignored.metadata.generation, 1);
  const specViaStatus = (await custom.replaceClusterCustomObjectStatus({ ...api, name, body: { ...ignored, spec: { ...ignored.spec, policies: ['ns/p'] } } })) as CompiledPolicySet;
  assert.deepEqual(specViaStatus.spec.policies, []);
  assert.equal(specViaStatus.metadata.generation, 1);

  const changed = (await custom.replaceClusterCustomObject({ ...api, name, body: { ...specViaStatus, spec: { ...specViaStatus.spec, policies: ['ns/p'] } } })) as CompiledPolicySet;
  assert.equal(changed.metadata.generation, 2);
  assert.deepEqual(changed.spec.policies, ['ns/p']);
  assert.deepEqual(changed.status, inSync(1), 'a spec change keeps the status');

  // A merge patch (explicit content type) on spec bumps generation too.
  const patched = (await custom.patchClusterCustomObject({ ...api, name, body: { spec: { policies: [] } } }, mergePatch)) as CompiledPolicySet;
  assert.equal(patched.metadata.generation, 3);
});

test('a watch on one CompiledPolicySet (field selector) sees it created, updated and deleted', async (t) => {
  const name = `cp-test-watch-${run}`;
  t.after(() => deleteCps(name));
  type Cps = CompiledPolicySet & KubernetesObject;
  const listFn = () =>
    custom.listClusterCustomObject({ ...api, fieldSelector: `metadata.name=${name}` }) as Promise<KubernetesListObject<Cps>>;
  const informer = new ListWatch<Cps>(`/apis/${CPS_GROUP}/${CPS_VERSION}/${CPS_PLURAL}`, new Watch(kc), listFn, false, undefined, `metadata.name=${name}`);
  const events: Array<{ type: string; generation?: number; observed?: number }> = [];
  const record = (type: string) => (o: Cps) => events.push({ type, generation: o.metadata.generation, observed: o.status?.observedGeneration });
  informer.on('add', record('add'));
  informer.on('update', record('update'));
  informer.on('delete', record('delete'));
  informer.on('error', (err) => events.push({ type: `error: ${String(err)}` }));
  await informer.start();
  t.after(() => informer.stop());

  const waitFor = async (what: string, match: (e: (typeof events)[number]) => boolean) => {
    const deadline = Date.now() + 15_000;
    while (!events.some(match)) {
      if (Date.now() > deadline) assert.fail(`no ${what} event within 15 s; saw ${JSON.stringify(events)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  await custom.createClusterCustomObject({ ...api, body: cps(name) });
  await waitFor('add', (e) => e.type === 'add' && e.generation === 1);

  await custom.patchClusterCustomObject({ ...api, name, body: { spec: { policies: ['ns/p'] } } }, mergePatch);
  await waitFor('spec update', (e) => e.type === 'update' && e.generation === 2);

  await custom.replaceClusterCustomObjectStatus({ ...api, name, body: { ...(await getCps(name)), status: inSync(2) } });
  await waitFor('status update', (e) => e.type === 'update' && e.observed === 2);

  // Another CPS never reaches this watch.
  const other = await createCps(t, 'watch-other');
  await deleteCps(name);
  await waitFor('delete', (e) => e.type === 'delete');
  assert.ok(!events.some((e) => e.type.startsWith('error')), JSON.stringify(events));
  assert.equal(informer.list().length, 0);
  assert.ok(other.metadata.name);
  assert.deepEqual(events.map((e) => e.type), ['add', 'update', 'update', 'delete']);
});

test('an update carrying a stale resourceVersion is refused with 409', async (t) => {
  const name = (await createCps(t, 'conflict')).metadata.name;
  const stale = await getCps(name);
  const fresh = (await custom.replaceClusterCustomObject({ ...api, name, body: { ...stale, spec: { ...stale.spec, policies: ['ns/a'] } } })) as CompiledPolicySet;
  assert.notEqual(fresh.metadata.resourceVersion, stale.metadata.resourceVersion);

  const conflict = await refusal(custom.replaceClusterCustomObject({ ...api, name, body: { ...stale, spec: { ...stale.spec, policies: ['ns/b'] } } }));
  assert.equal(conflict.code, 409);
  assert.match(conflict.message, /the object has been modified/);
  const statusConflict = await refusal(custom.replaceClusterCustomObjectStatus({ ...api, name, body: { ...stale, status: inSync(1) } }));
  assert.equal(statusConflict.code, 409);
  assert.deepEqual((await getCps(name)).spec.policies, ['ns/a']);
});

test('RBAC: an agent allowed only to read CPS and update their status cannot change the spec', async (t) => {
  const cluster = testCluster();
  const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
  const core = kc.makeApiClient(CoreV1Api);
  const role = `fencer-test-agent-limited-${run}`;
  await rbac.createClusterRole({
    body: {
      metadata: { name: role },
      rules: [
        { apiGroups: [CPS_GROUP], resources: [CPS_PLURAL], verbs: ['get', 'list', 'watch'] },
        { apiGroups: [CPS_GROUP], resources: [`${CPS_PLURAL}/status`], verbs: ['update'] },
      ],
    },
  });
  t.after(() => rbac.deleteClusterRole({ name: role }).then(() => undefined));
  await rbac.createClusterRoleBinding({
    body: {
      metadata: { name: role },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role },
      subjects: [{ kind: 'ServiceAccount', name: 'fencer-agent', namespace: 'kube-system' }],
    },
  });
  t.after(() => rbac.deleteClusterRoleBinding({ name: role }).then(() => undefined));
  const agentKc = await cluster.kubeConfigFor('kube-system', 'fencer-agent');
  t.after(() => core.deleteNamespacedServiceAccount({ namespace: 'kube-system', name: 'fencer-agent' }).then(() => undefined));
  const agent = agentKc.makeApiClient(CustomObjectsApi);

  const name = (await createCps(t, 'rbac')).metadata.name;
  // The authorizer learns of new bindings through its own watch: allow it a moment.
  let current: CompiledPolicySet | undefined;
  for (let deadline = Date.now() + 10_000; !current; ) {
    try {
      current = await getCps(name, agent);
    } catch (e) {
      if (!(e instanceof ApiException && e.code === 403) || Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  const updated = (await agent.replaceClusterCustomObjectStatus({ ...api, name, body: { ...current, status: inSync(1) } })) as CompiledPolicySet;
  assert.equal(updated.status?.observedGeneration, 1);

  const specChange = await refusal(agent.replaceClusterCustomObject({ ...api, name, body: { ...updated, spec: { ...updated.spec, policies: ['ns/evil'] } } }));
  assert.equal(specChange.code, 403);
  assert.match(specChange.message, /system:serviceaccount:kube-system:fencer-agent/);
  const statusPatch = await refusal(agent.patchClusterCustomObjectStatus({ ...api, name, body: { status: { agent: 'x' } } }, mergePatch));
  assert.equal(statusPatch.code, 403, 'only update was granted on status, not patch');
  const deletion = await refusal(agent.deleteClusterCustomObject({ ...api, name }));
  assert.equal(deletion.code, 403);
  const creation = await refusal(agent.createClusterCustomObject({ ...api, body: cps(`cp-test-rbac-new-${run}`) }));
  assert.equal(creation.code, 403);

  assert.deepEqual((await getCps(name)).spec.policies, []);
});

test('a kubelet-played Node and Pod carry their addresses', async (t) => {
  const k = kubelet(kc);
  const core = kc.makeApiClient(CoreV1Api);
  const namespace = `cp-test-${run}`;
  const nodeName = `cp-test-node-${run}`;
  t.after(async () => {
    await k.deleteNamespace(namespace);
    await k.deleteNode(nodeName);
  });
  await k.createNamespace(namespace, { team: 'a' });
  await k.createNode(nodeName, '10.244.7.0/24', { internalIP: '172.18.0.7' });
  const node = await core.readNode({ name: nodeName });
  assert.equal(node.spec?.podCIDR, '10.244.7.0/24');
  assert.deepEqual(node.spec?.podCIDRs, ['10.244.7.0/24']);
  assert.equal(node.status?.conditions?.find((c) => c.type === 'Ready')?.status, 'True');

  await k.createPod({ namespace, name: 'web', node: nodeName, labels: { app: 'web' }, ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }], ip: '10.244.7.10' });
  const auto = await k.createPod({ namespace, name: 'db', node: nodeName, labels: { app: 'db' } });
  assert.equal(auto.status?.podIP, '10.244.7.2', 'the first free address of the podCIDR');

  const pod = await core.readNamespacedPod({ namespace, name: 'web' });
  assert.equal(pod.spec?.nodeName, nodeName);
  assert.equal(pod.status?.phase, 'Running');
  assert.equal(pod.status?.podIP, '10.244.7.10');
  assert.deepEqual(pod.status?.podIPs?.map((i) => i.ip), ['10.244.7.10']);
  assert.equal(pod.status?.hostIP, '172.18.0.7');
  assert.deepEqual(pod.spec?.containers[0].ports?.map((p) => ({ ...p })), [{ name: 'http', containerPort: 8080, protocol: 'TCP' }]);

  await k.labelPod(namespace, 'web', { app: null, tier: 'front' });
  assert.deepEqual((await core.readNamespacedPod({ namespace, name: 'web' })).metadata?.labels, { tier: 'front' });
  await k.labelNamespace(namespace, { team: 'b' });
  assert.equal((await core.readNamespace({ name: namespace })).metadata?.labels?.team, 'b');

  await k.deletePod(namespace, 'db');
  await assert.rejects(core.readNamespacedPod({ namespace, name: 'db' }), (e: unknown) => e instanceof ApiException && e.code === 404);
});
