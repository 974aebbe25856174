// Leader election between operator replicas on a real Lease: one leader, the standby writes nothing,
// and takes over (and converges) when the leader crashes or shuts down. Short lease timings here
// (FAST_LEASE: 2 s); the defaults (10 s lease, 2 s retry) bound a takeover at 12 s the same way.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { CoordinationV1Api } from '@kubernetes/client-node';
import type { OperatorHandle } from '../../operator/operator.ts';
import { converged, FAST_LEASE, kube, settled, waitFor, setWrites, World, writes } from './operator-fixture.ts';
import { cpsTestHooks } from './operator-fixture.ts';

const hooks = cpsTestHooks();


async function smallWorld(w: World) {
  const nodes = [await w.node('n1'), await w.node('n2')];
  const ns = await w.namespace('ns');
  await w.pod({ namespace: ns, name: 'web', node: nodes[0], labels: { app: 'web' } });
  await w.pod({ namespace: ns, name: 'client', node: nodes[1], labels: { role: 'client' } });
  await w.policy(ns, { metadata: { name: 'web' }, spec: { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ _from: [{ podSelector: { matchLabels: { role: 'client' } } }] }] } });
  return { nodes, ns };
}

async function oneLeader(ops: OperatorHandle[]): Promise<OperatorHandle> {
  return waitFor('exactly one leader', async () => {
    const leaders = ops.filter((o) => o.isLeader());
    return leaders.length === 1 ? leaders[0] : undefined;
  }, 10_000, 20);
}

test('two replicas: one leads, the standby writes nothing, and takes over when the leader crashes', async (t) => {
  const w = new World(t, 'leader');
  const { nodes, ns } = await smallWorld(w);
  const lease = w.name('lease');
  const first = await w.operator({ leaseName: lease, identity: 'replica-a' });
  const second = await w.operator({ leaseName: lease, identity: 'replica-b' });
  const leader = await oneLeader([first, second]);
  const standby = leader === first ? second : first;
  await converged(hooks.api, nodes);
  await settled(leader);
  await new Promise((r) => setTimeout(r, FAST_LEASE.durationMs)); // a whole lease period: the standby must stay put
  assert.equal(standby.isLeader(), false);
  assert.equal(await writes(standby), 0, 'the standby never writes');
  assert.equal(await setWrites(standby), 0, 'not even an AddressSet');
  assert.ok(standby.ready(), 'the standby has listed and compiled too');

  // A crash: no release. The standby waits out the lease (measured by its own clock), then leads.
  const crashed = Date.now();
  await leader.stop({ releaseLease: false });
  await hooks.api.k.labelPod(ns, 'client', { role: 'other' });
  await waitFor('the standby to take over', async () => standby.isLeader(), 10_000, 20);
  const takeover = Date.now() - crashed;
  assert.ok(takeover <= FAST_LEASE.durationMs + FAST_LEASE.retryMs + 1000, `took over after ${takeover} ms`);
  await converged(hooks.api, nodes);
  assert.ok((await writes(standby)) + (await setWrites(standby)) > 0, 'the new leader wrote the change made while nobody led');

  const holder = await kube().kc.makeApiClient(CoordinationV1Api).readNamespacedLease({ name: lease, namespace: 'kube-system' });
  assert.equal(holder.spec?.holderIdentity, leader === first ? 'replica-b' : 'replica-a');
  assert.equal(holder.spec?.leaseTransitions, 1);
});

test('a leader that shuts down releases the lease: the standby takes over at its next retry', async (t) => {
  const w = new World(t, 'handover');
  const { nodes, ns } = await smallWorld(w);
  const lease = w.name('lease');
  const ops = [await w.operator({ leaseName: lease, identity: 'replica-a' }), await w.operator({ leaseName: lease, identity: 'replica-b' })];
  const leader = await oneLeader(ops);
  const standby = ops.find((o) => o !== leader)!;
  await converged(hooks.api, nodes);

  const stopped = Date.now();
  await leader.stop();
  await waitFor('the standby to take over', async () => standby.isLeader(), 5_000, 20);
  const takeover = Date.now() - stopped;
  assert.ok(takeover <= FAST_LEASE.retryMs + 700, `took over ${takeover} ms after the release`);
  await hooks.api.k.labelPod(ns, 'client', { role: 'other' });
  await converged(hooks.api, nodes);
  await settled(standby);
});
