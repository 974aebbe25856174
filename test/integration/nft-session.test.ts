// Member-only changes through the long-lived `nft -i` session (agent/dataplane/nftables/session.ts),
// with real nft in network namespaces: what goes through it and what does not, a change the kernel
// refuses, a session that dies, and the process ending with the dataplane.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { CompiledPolicySetSpec } from '../../crds/types.ts';
import { execFileSync } from 'node:child_process';
import { createNftablesDataplane, NftablesDataplane } from '../../agent/dataplane/nftables/dataplane.ts';
import { NftSession } from '../../agent/dataplane/nftables/session.ts';
import { ShellRunner } from '../../agent/dataplane/linux/shell-runner.ts';
import type { KernelRunner, RunResult } from '../../agent/dataplane/linux/runner.ts';
import { createNetns, withNetns } from '../helpers/netns.ts';
import { scenarioSpecs } from '../helpers/scenario-specs.ts';

const named = scenarioSpecs('test/scenarios/21-named-port-80-from-y.yaml', 1).get('node-1')!;
const peer = named.targets[0].ingress!.rules[0].peers[0];

function withMembers(spec: CompiledPolicySetSpec, set: string, members: string[]): CompiledPolicySetSpec {
  return { ...spec, ipSets: spec.ipSets.map((s) => (s.name === set ? { ...s, members } : s)) };
}

/** Counts the `nft -f` commits (commit.ts runs them as `sh -c …`) that reach the runner. */
class CountingRunner implements KernelRunner {
  commits = 0;
  readonly inner: ShellRunner;
  constructor(ns: string) {
    this.inner = new ShellRunner(['ip', 'netns', 'exec', ns], { netns: ns });
  }
  run(command: string, args: string[], input?: string): Promise<RunResult> {
    if (command === 'sh') this.commits++;
    return this.inner.run(command, args, input);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

const members = (ns: ReturnType<typeof createNetns>) => (/elements = \{([^}]*)\}/.exec(ns.exec(['nft', 'list', 'set', 'inet', 'fencer', peer]))?.[1] ?? '').split(',').map((e) => e.trim()).filter(Boolean).sort();
const alive = (pid: number | undefined) => {
  if (pid === undefined) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

async function withSessionDataplane(fn: (dp: NftablesDataplane, runner: CountingRunner, session: NftSession, ns: ReturnType<typeof createNetns>) => Promise<void>): Promise<void> {
  await withNetns(async (ns) => {
    const runner = new CountingRunner(ns.name);
    const session = new NftSession(['ip', 'netns', 'exec', ns.name]);
    const dp = new NftablesDataplane({ runner, session });
    try {
      await dp.apply(named);
      await fn(dp, runner, session, ns);
    } finally {
      await dp.close();
    }
  });
}

test('pods joining and leaving sets go through one nft session, no nft -f; rule changes still use nft -f', async () => {
  await withSessionDataplane(async (dp, runner, session, ns) => {
    const before = runner.commits;
    let pid: number | undefined;
    for (let i = 0; i < 4; i++) {
      const list = i % 2 ? ['10.244.2.11'] : ['10.244.2.11', `10.244.2.${50 + i}`];
      assert.equal((await dp.apply(withMembers(named, peer, list))).kind, 'members');
      assert.deepEqual(members(ns), list.sort());
      pid ??= session.pid();
      assert.equal(session.pid(), pid, 'the same nft process for every change');
    }
    assert.ok(alive(pid));
    assert.equal(runner.commits, before, 'no nft -f for a member change');
    assert.equal((await dp.apply({ ...named, targets: [] })).kind, 'rules');
    assert.equal(runner.commits, before + 1);
    await dp.close();
    assert.equal(session.pid(), undefined);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(alive(pid), false, 'the session ends with the dataplane');
  });
});

test('a change the kernel refuses through the session (an element already deleted by hand) is replaced whole, as with nft -f', async () => {
  await withSessionDataplane(async (dp, runner, _session, ns) => {
    assert.equal((await dp.apply(withMembers(named, peer, ['10.244.2.11', '10.244.2.60']))).kind, 'members');
    ns.exec(['nft', 'delete', 'element', 'inet', 'fencer', peer, '{ 10.244.2.60 }']);
    const before = runner.commits;
    const r = await dp.apply(withMembers(named, peer, ['10.244.2.11']));
    assert.equal(r.kind, 'rules', 'the table was replaced whole');
    assert.equal(runner.commits, before + 1);
    assert.deepEqual(members(ns), ['10.244.2.11']);
    assert.deepEqual(await dp.drift(withMembers(named, peer, ['10.244.2.11'])), []);
  });
});

test('a session that died is replaced: the change in hand goes through nft -f, the next through a new session', async () => {
  await withSessionDataplane(async (dp, runner, session, ns) => {
    await dp.apply(withMembers(named, peer, ['10.244.2.11', '10.244.2.61']));
    const first = session.pid()!;
    process.kill(first, 'SIGKILL');
    await new Promise((r) => setTimeout(r, 100));
    const before = runner.commits;
    assert.equal((await dp.apply(withMembers(named, peer, ['10.244.2.11', '10.244.2.62']))).kind, 'members');
    assert.deepEqual(members(ns), ['10.244.2.11', '10.244.2.62']);
    assert.equal((await dp.apply(withMembers(named, peer, ['10.244.2.11', '10.244.2.63']))).kind, 'members');
    assert.deepEqual(members(ns), ['10.244.2.11', '10.244.2.63']);
    const second = session.pid();
    assert.ok(second !== undefined && second !== first, 'a new session');
    assert.ok(runner.commits - before <= 1, `at most the change in hand went through nft -f (${runner.commits - before})`);
  });
});

test('a member change too long for one atomic write goes through nft -f whole', async () => {
  await withSessionDataplane(async (dp, runner, _session, ns) => {
    const many = Array.from({ length: 600 }, (_, i) => `10.250.${Math.floor(i / 250)}.${(i % 250) + 1}`);
    const before = runner.commits;
    assert.equal((await dp.apply(withMembers(named, peer, many))).kind, 'members');
    assert.equal(runner.commits, before + 1);
    assert.equal(members(ns).length, 600);
  });
});

test('the session follows a namespace deleted and made again under the same name, as the shell does', async () => {
  await withNetns(async (ns) => {
    const dp = createNftablesDataplane({ netns: ns.name });
    try {
      await dp.apply(named);
      await dp.apply(withMembers(named, peer, ['10.244.2.11', '10.244.2.70']));
      execFileSync('ip', ['netns', 'del', ns.name]);
      execFileSync('ip', ['netns', 'add', ns.name]);
      // The new namespace is empty: the whole table goes there, then a member change follows it.
      dp.forget();
      assert.equal((await dp.apply(withMembers(named, peer, ['10.244.2.11', '10.244.2.71']))).kind, 'rules');
      assert.equal((await dp.apply(withMembers(named, peer, ['10.244.2.11', '10.244.2.72']))).kind, 'members');
      assert.deepEqual(members(ns), ['10.244.2.11', '10.244.2.72'], 'the member change reached the namespace that has the name now');
    } finally {
      await dp.close();
    }
  });
});
