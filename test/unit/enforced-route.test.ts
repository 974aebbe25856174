// /enforced: the digest covers shared members (a change of members only moves it), and a held answer
// returns when the digest moves, or when its wait ends.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { enforcedRoute, type EnforcedSource } from '../../agent/enforced-route.ts';
import { enforcedDigest } from '../../crds/enforced-digest.ts';
import type { CompiledPolicySetSpec } from '../../crds/types.ts';

function spec(members: string[], hash = 'sha256:aa'): CompiledPolicySetSpec {
  return {
    nodeName: 'n1', contentHash: hash, podCIDRs: [], policies: [], targets: [], diagnostics: [],
    ipSets: [{ name: 'p-0123456789abcdef', kind: 'ip', origin: 'pods with app=a', members }],
    counts: { policies: 0, rules: 0, sets: 1, entries: members.length, pods: 0 },
  } as CompiledPolicySetSpec;
}

class FakeAgent implements EnforcedSource {
  current?: CompiledPolicySetSpec;
  private readonly listeners = new Set<() => void>();
  enforcedSpec() { return this.current; }
  onEnforced(l: () => void) { this.listeners.add(l); return () => this.listeners.delete(l); }
  apply(s: CompiledPolicySetSpec) { this.current = s; for (const l of this.listeners) l(); }
  get waiting() { return this.listeners.size; }
}

const ask = async (agent: FakeAgent, query = '') => JSON.parse((await enforcedRoute(agent)(new URL(`http://x/enforced${query}`))).body) as { contentHash: string | null; digest: string | null };

test('the digest follows members, whatever order shards gave them in, and the content hash', () => {
  assert.equal(enforcedDigest(spec(['10.0.0.2', '10.0.0.1'])), enforcedDigest(spec(['10.0.0.1', '10.0.0.2'])));
  assert.notEqual(enforcedDigest(spec(['10.0.0.1'])), enforcedDigest(spec(['10.0.0.1', '10.0.0.2'])));
  assert.notEqual(enforcedDigest(spec(['10.0.0.1'])), enforcedDigest(spec(['10.0.0.1'], 'sha256:bb')));
});

test('an agent enforcing nothing answers null, at once', async () => {
  assert.deepEqual(await ask(new FakeAgent()), { contentHash: null, digest: null });
});

test('a held answer returns when the members move, not on an apply that changes nothing', async () => {
  const agent = new FakeAgent();
  agent.apply(spec(['10.0.0.1']));
  const before = (await ask(agent)).digest!;
  let answered = false;
  const held = ask(agent, `?unlike=${encodeURIComponent(before)}&waitMs=5000`).then((a) => { answered = true; return a; });
  await new Promise((r) => setImmediate(r));
  agent.apply(spec(['10.0.0.1']));
  await new Promise((r) => setImmediate(r));
  assert.equal(answered, false);
  agent.apply(spec(['10.0.0.1', '10.0.0.9']));
  const after = await held;
  assert.equal(after.digest, enforcedDigest(spec(['10.0.0.1', '10.0.0.9'])));
  assert.equal(agent.waiting, 0, 'the answer stops listening');
});

test('a held answer ends with the current digest when its wait runs out', async () => {
  const agent = new FakeAgent();
  agent.apply(spec(['10.0.0.1']));
  const before = (await ask(agent)).digest!;
  const started = performance.now();
  const answer = await ask(agent, `?unlike=${encodeURIComponent(before)}&waitMs=30`);
  assert.equal(answer.digest, before);
  assert.ok(performance.now() - started >= 25);
  assert.equal(agent.waiting, 0);
});
