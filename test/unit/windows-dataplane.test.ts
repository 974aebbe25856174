import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import type { CompiledPolicySetSpec } from '../../crds/types.ts';
import { WindowsApplyError, WindowsDataplane } from '../../agent/dataplane/windows/dataplane.ts';
import { RecordingHnsClient, type HnsCall } from '../../agent/dataplane/windows/recording-client.ts';
import { translateSpec } from '../../agent/dataplane/windows/translate.ts';
import { isFencerAcl, type AclPolicy } from '../../agent/dataplane/windows/hns-types.ts';
import { npmWindowsMetrics } from '../../runtime/npm-metrics.ts';
import { scenarioSnapshot, scenarioSpecs } from '../helpers/scenario-specs.ts';
import { PolicyCompiler } from '../../operator/compile/compiler.ts';
import { desiredShards } from '../../operator/set-plan.ts';
import { cpsObject } from '../../operator/cps-object.ts';
import { SharedSetCache } from '../../agent/shared-sets.ts';
import { NodeAgent } from '../../agent/node-agent.ts';
import { agentMetrics } from '../../agent/metrics.ts';
import { silentLogger } from '../../runtime/log.ts';

// Scenario 28 on node-1: x/a (10.244.1.10) may egress to y/a; y/b (10.244.1.12) admits ingress from x/a.
const A: CompiledPolicySetSpec = scenarioSpecs('test/scenarios/28-egress-and-ingress-both-required.yaml', 1).get('node-1')!;
const X_A = '10.244.1.10';
const Y_B = '10.244.1.12';
const TO_Y_A = 'p-fbe07464ea85da56';
const FROM_X_A = 'p-7f0e611b6518b727';

/** An ACL the CNI put there (Azure CNI blocks the wireserver); Fencer must keep it. */
const CNI_ACL = { Id: undefined, Action: 'Block', Direction: 'Out', RemoteAddresses: '168.63.129.16/32', RuleType: 'Switch', Priority: 65000 } as unknown as AclPolicy;

function setup(opts: { maxAclsPerCall?: number; metrics?: ReturnType<typeof npmWindowsMetrics> } = {}) {
  const client = new RecordingHnsClient();
  client.addEndpoint('ep-xa', X_A, [CNI_ACL]);
  client.addEndpoint('ep-xb', '10.244.1.11', [CNI_ACL]);
  client.addEndpoint('ep-yb', Y_B);
  return { client, dp: new WindowsDataplane({ client, ...opts }) };
}

function clone(spec: CompiledPolicySetSpec): CompiledPolicySetSpec {
  return structuredClone(spec);
}

/** B: one member more in TO_Y_A (a set update), y/b's peers swapped for a new set (create + remove + one endpoint). */
function specB(): CompiledPolicySetSpec {
  const b = clone(A);
  b.ipSets.find((s) => s.name === TO_Y_A)!.members.push('10.244.2.12');
  b.ipSets = b.ipSets.filter((s) => s.name !== FROM_X_A);
  b.ipSets.push({ name: 'p-new', kind: 'ip', origin: 'new peers', members: ['10.244.2.13'] });
  b.targets[1].ingress!.rules[0].peers = ['p-new'];
  return b;
}

const methods = (calls: HnsCall[]) => calls.map((c) => `${c.method}${c.endpoint ? ` ${c.endpoint}` : ''}${c.ids ? ` ${c.ids.join('+')}` : ''}`);
const writes = (calls: HnsCall[]) => methods(calls.filter((c) => !['listEndpoints', 'listSetPolicies', 'getEndpointAcls'].includes(c.method)));
const fencerAcls = (acls: AclPolicy[]) => acls.filter(isFencerAcl);

test('the first apply writes the sets, then the ACLs of the targeted endpoints, keeping the CNI\'s ACLs', async () => {
  const { client, dp } = setup();
  const outcome = await dp.apply(A);
  assert.equal(outcome.kind, 'rules');
  assert.deepEqual(outcome.missingEndpoints, []);
  const desired = translateSpec(A);
  const state = client.snapshot();
  assert.deepEqual(state.sets, desired.setPolicies);
  assert.deepEqual(fencerAcls(state.acls[X_A]), desired.endpoints.get(X_A));
  assert.deepEqual(fencerAcls(state.acls[Y_B]), desired.endpoints.get(Y_B));
  assert.ok(state.acls[X_A].some((a) => a.Priority === 65000 && !isFencerAcl(a)), 'the CNI ACL stays');
  assert.deepEqual(state.acls['10.244.1.11'], [CNI_ACL], 'an endpoint no policy selects is not touched');
  assert.deepEqual(writes(client.calls), [`addOrUpdateSetPolicies fencer-${FROM_X_A}+fencer-${TO_Y_A}`, 'setEndpointAcls ep-xa', 'setEndpointAcls ep-yb']);
});

test('re-applying the same spec makes no call at all; a fresh agent only reads', async () => {
  const { client, dp } = setup();
  await dp.apply(A);
  client.clearCalls();
  assert.equal((await dp.apply(A)).kind, 'noop');
  assert.deepEqual(client.calls, []);
  const fresh = new WindowsDataplane({ client });
  assert.equal((await fresh.apply(A)).kind, 'noop');
  assert.deepEqual(writes(client.calls), []);
  assert.deepEqual(await fresh.drift(A), []);
});

test('a one-member change rewrites that set policy only', async () => {
  const { client, dp } = setup();
  await dp.apply(A);
  client.clearCalls();
  const more = clone(A);
  more.ipSets.find((s) => s.name === TO_Y_A)!.members.push('10.244.2.12');
  assert.equal((await dp.apply(more)).kind, 'members');
  assert.deepEqual(methods(client.calls), [`addOrUpdateSetPolicies fencer-${TO_Y_A}`]);
  assert.equal(client.snapshot().sets.find((s) => s.Id === `fencer-${TO_Y_A}`)?.Values, '10.244.2.11,10.244.2.12');
});

test('a rule change rewrites only the endpoints whose ACLs change', async () => {
  const { client, dp } = setup();
  await dp.apply(A);
  client.clearCalls();
  const tcp = clone(A);
  tcp.targets[0].egress!.rules[0] = { ...tcp.targets[0].egress!.rules[0], anyPort: false, ports: [{ protocol: 'TCP', port: 443 }] };
  assert.equal((await dp.apply(tcp)).kind, 'rules');
  assert.deepEqual(methods(client.calls), ['setEndpointAcls ep-xa']);
});

test('sets are written before the ACLs naming them and removed after the last ACL stops naming them', async () => {
  const { client, dp } = setup();
  await dp.apply(A);
  client.clearCalls();
  await dp.apply(specB());
  assert.deepEqual(methods(client.calls), [
    'addOrUpdateSetPolicies fencer-p-new', `addOrUpdateSetPolicies fencer-${TO_Y_A}`, 'setEndpointAcls ep-yb', `removeSetPolicies fencer-${FROM_X_A}`,
  ]);
});

test('a failure on any call of an apply restores the previous state, and a retry then succeeds', async () => {
  const { client: counter, dp: counting } = setup();
  await counting.apply(A);
  counting.forget();
  counter.clearCalls();
  await counting.apply(specB());
  const total = counter.calls.length;
  assert.equal(total, 9, 'five reads and four writes');
  for (let n = 1; n <= total; n++) {
    const { client, dp } = setup();
    await dp.apply(A);
    const before = client.snapshot();
    dp.forget();
    client.clearCalls();
    client.failOnCall(n);
    await assert.rejects(dp.apply(specB()), (e: Error) => e instanceof WindowsApplyError && /previous state restored/.test(e.message), `call ${n}`);
    assert.deepEqual(client.snapshot(), before, `state after a failure of call ${n} (${methods(client.calls)[n - 1]})`);
    await dp.apply(specB());
    assert.deepEqual(client.snapshot().sets, translateSpec(specB()).setPolicies);
  }
});

test('a long ACL list goes as one Update and then Adds, Blocks first, within the per-call limit', async () => {
  const { client, dp } = setup({ maxAclsPerCall: 2 });
  await dp.apply(A);
  const ep = client.calls.filter((c) => c.endpoint === 'ep-xa' && c.method !== 'getEndpointAcls');
  assert.deepEqual(ep.map((c) => [c.method, c.count]), [['setEndpointAcls', 2], ['addEndpointAcls', 2]]);
  assert.deepEqual(fencerAcls(client.snapshot().acls[X_A]), translateSpec(A).endpoints.get(X_A));
});

test('a targeted pod without an endpoint is reported, and programmed once its endpoint exists', async () => {
  const { client, dp } = setup();
  client.removeEndpoint('ep-yb');
  assert.deepEqual((await dp.apply(A)).missingEndpoints, [Y_B]);
  client.addEndpoint('ep-yb2', Y_B);
  const outcome = await dp.apply(A);
  assert.deepEqual(outcome.missingEndpoints, []);
  assert.deepEqual(fencerAcls(client.snapshot().acls[Y_B]), translateSpec(A).endpoints.get(Y_B));
});

test('drift finds ACLs someone removed, and the next apply puts them back', async () => {
  const { client, dp } = setup();
  await dp.apply(A);
  await client.setEndpointAcls('ep-yb', []);
  assert.match((await dp.drift(A)).join('\n'), /ACLs differ on 1 endpoints: 10\.244\.1\.12/);
  await dp.apply(A);
  assert.deepEqual(await dp.drift(A), []);
});

test('cleanup removes every ACL and set policy Fencer owns and nothing else', async () => {
  const { client, dp } = setup();
  await dp.apply(A);
  await dp.cleanup();
  const state = client.snapshot();
  assert.deepEqual(state.sets, []);
  assert.deepEqual(state.acls, { [X_A]: [CNI_ACL], '10.244.1.11': [CNI_ACL], [Y_B]: [] });
});

test('HNS latencies and failures land in Azure NPM\'s npm_windows_* metrics', async () => {
  const registry = new Registry();
  const { client, dp } = setup({ metrics: npmWindowsMetrics(registry) });
  await dp.apply(A);
  client.failOnCall(1);
  await assert.rejects(dp.apply(specB()));
  const text = await registry.metrics();
  assert.match(text, /npm_windows_acl_latency_seconds_count\{operation="update"\} [1-9]/);
  assert.match(text, /npm_windows_setpolicy_latency_seconds_count\{operation="create",is_nested="false"\} [1-9]/);
  assert.match(text, /npm_windows_list_endpoints_latency_seconds_count [1-9]/);
  assert.match(text, /npm_windows_setpolicy_failure_total\{operation="create",is_nested="false"\} 1/);
});

test('fencer agent picks Windows on Windows and a Linux dataplane elsewhere unless --dataplane names one; the Windows one reads its settings from the environment', async () => {
  const { pickDataplane } = await import('../../cli/agent.ts');
  const { parseDataplaneFlag } = await import('../../agent/dataplane/choose.ts');
  const { windowsDataplaneFromEnv } = await import('../../agent/dataplane/windows/from-env.ts');
  const base = { hookPosition: 'after-kube-services' as const, iptablesMode: 'auto' as const };
  const windows = await pickDataplane({ ...base, dataplane: 'windows' });
  assert.ok(windows.dataplane instanceof WindowsDataplane);
  assert.equal((await pickDataplane({ ...base, dataplane: 'linux' })).name, 'iptables', '"linux" is the ipset/iptables dataplane, as before nftables');
  assert.equal((await pickDataplane(base)).name === 'windows', process.platform === 'win32');
  assert.throws(() => parseDataplaneFlag('bsd'), /auto, iptables, nftables, windows/);
  assert.throws(() => windowsDataplaneFromEnv(undefined, { FENCER_HNS_INGRESS_PEER_FIELD: 'Source' }), /LocalAddresses or RemoteAddresses/);
  assert.ok(windowsDataplaneFromEnv(new Registry(), { NODE_IP: '10.0.0.4', FENCER_HNS_SCTP: 'false' }) instanceof WindowsDataplane);
});

test('the Windows agent reads the shared-set contract: the node spec plus AddressSet shards enforce what the full spec does, and a shard change is one set policy', async () => {
  const compiler = PolicyCompiler.loaded(scenarioSnapshot('test/scenarios/28-egress-and-ingress-both-required.yaml', 1));
  const split = compiler.nodeSpec('node-1')!;
  assert.ok(split.sharedSets!.length > 0, 'the spec names shared sets');
  const sharedSets = new SharedSetCache();
  let rv = 1;
  for (const id of compiler.sharedSetIds()) {
    const set = compiler.sharedSet(id)!;
    for (const o of desiredShards(set, set.nodes, [])) sharedSets.apply('node', 'upsert', { ...o, metadata: { ...o.metadata, uid: o.metadata.name, resourceVersion: String(rv++) } });
  }
  const { client, dp } = setup();
  const viaShards = new NodeAgent({ nodeName: 'node-1', agentName: 'test', dataplane: dp, sharedSets, metrics: agentMetrics(), log: silentLogger(), driftIntervalMs: 0, statusWriter: { writeStatus: async () => true } });
  await viaShards.offer({ ...cpsObject(split), metadata: { ...cpsObject(split).metadata, generation: 1, resourceVersion: '1' } });
  const reference = setup();
  await reference.dp.apply(compiler.spec('node-1')!);
  assert.deepEqual(client.snapshot(), reference.client.snapshot(), 'the same HNS state as the full spec');
  client.clearCalls();
  const set = compiler.sharedSet(TO_Y_A)!;
  const [shard] = desiredShards({ ...set, members: [...set.members, '10.244.2.12'] }, set.nodes, []);
  if (sharedSets.apply('node', 'upsert', { ...shard, metadata: { ...shard.metadata, uid: shard.metadata.name, resourceVersion: String(rv++) } })) await viaShards.offerSets();
  assert.deepEqual(writes(client.calls), [`addOrUpdateSetPolicies fencer-${TO_Y_A}`]);
  await viaShards.stop();
});
