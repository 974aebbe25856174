import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { CompiledPolicySetSpec } from '../../crds/types.ts';
import { chooseBackend } from '../../agent/dataplane/choose.ts';
import type { Dataplane, DataplaneOutcome } from '../../agent/dataplane/dataplane.ts';
import { HandoverDataplane } from '../../agent/dataplane/handover.ts';

const none = { available: true, kubeProxy: false, fencerTable: false };

test('auto picks nftables where kube-proxy or an earlier Fencer agent uses it, iptables otherwise; a named dataplane is taken as named', () => {
  assert.equal(chooseBackend('auto', none).backend, 'iptables');
  assert.equal(chooseBackend('auto', { ...none, kubeProxy: true }).backend, 'nftables');
  assert.equal(chooseBackend('auto', { ...none, fencerTable: true }).backend, 'nftables');
  assert.equal(chooseBackend('auto', { available: false, kubeProxy: false, fencerTable: false }).backend, 'iptables');
  assert.match(chooseBackend('auto', { ...none, kubeProxy: true }).reason, /kube-proxy/);
  assert.equal(chooseBackend('iptables', { ...none, kubeProxy: true }).backend, 'iptables');
  assert.equal(chooseBackend('linux', { ...none, fencerTable: true }).backend, 'iptables');
  assert.equal(chooseBackend('nftables', none).backend, 'nftables');
  assert.throws(() => chooseBackend('nftables', { available: false, kubeProxy: false, fencerTable: false }), /nft does not work/);
});

class FakeDataplane implements Dataplane {
  readonly calls: string[] = [];
  failCleanup = 0;
  async apply(spec: CompiledPolicySetSpec): Promise<DataplaneOutcome> {
    this.calls.push(`apply ${spec.contentHash}`);
    return { kind: 'rules', counts: { rules: 1, sets: 0, entries: 0 }, ipsetMs: 0, iptablesMs: 0 };
  }
  async drift(): Promise<string[]> {
    this.calls.push('drift');
    return [];
  }
  async cleanup(): Promise<void> {
    this.calls.push('cleanup');
    if (this.failCleanup-- > 0) throw new Error('injected');
  }
}

const spec = (hash: string) => ({ contentHash: hash }) as CompiledPolicySetSpec;

test('the other dataplane is removed once, after the chosen one first applied, and only when it holds something', async () => {
  const current = new FakeDataplane();
  const previous = new FakeDataplane();
  let holds = true;
  const order: string[] = [];
  const dp = new HandoverDataplane(current, { name: 'iptables', dataplane: previous, holdsState: async () => { order.push(`asked after ${current.calls.length} applies`); return holds; } });
  await dp.apply(spec('a'));
  await dp.apply(spec('b'));
  assert.deepEqual(current.calls, ['apply a', 'apply b']);
  assert.deepEqual(previous.calls, ['cleanup']);
  assert.deepEqual(order, ['asked after 1 applies'], 'asked once, after the new rules were in place');

  const quiet = new FakeDataplane();
  holds = false;
  await new HandoverDataplane(new FakeDataplane(), { name: 'nftables', dataplane: quiet, holdsState: async () => holds }).apply(spec('a'));
  assert.deepEqual(quiet.calls, [], 'nothing there: nothing written');
});

test('a removal that fails is tried again after the next apply; the apply itself still succeeds', async () => {
  const previous = new FakeDataplane();
  previous.failCleanup = 1;
  const dp = new HandoverDataplane(new FakeDataplane(), { name: 'iptables', dataplane: previous, holdsState: async () => true });
  assert.equal((await dp.apply(spec('a'))).kind, 'rules');
  await dp.apply(spec('b'));
  await dp.apply(spec('c'));
  assert.deepEqual(previous.calls, ['cleanup', 'cleanup']);
});

test('a removal that failed is tried again by the drift check, so a node with no change coming still loses the other dataplane\'s rules', async () => {
  const previous = new FakeDataplane();
  previous.failCleanup = 1;
  const dp = new HandoverDataplane(new FakeDataplane(), { name: 'iptables', dataplane: previous, holdsState: async () => true });
  assert.deepEqual(await dp.drift(spec('a')), [], 'before any apply the other dataplane is left alone');
  assert.deepEqual(previous.calls, []);
  await dp.apply(spec('a'));
  await dp.drift(spec('a'));
  await dp.drift(spec('a'));
  assert.deepEqual(previous.calls, ['cleanup', 'cleanup']);
});
