import { test } from 'node:test';
import { execFileSync } from 'node:child_process';
import assert from 'node:assert/strict';
import type { CompiledPolicySetSpec } from '../../crds/types.ts';
import { LinuxDataplane } from '../../agent/dataplane/linux/dataplane.ts';
import { ExecRunner, type KernelRunner, type RunResult } from '../../agent/dataplane/linux/runner.ts';
import { ShellRunner } from '../../agent/dataplane/linux/shell-runner.ts';
import { toolsFor } from '../../agent/dataplane/linux/backend.ts';
import { createNetns, withNetns } from '../helpers/netns.ts';
import { scenarioSpecs } from '../helpers/scenario-specs.ts';

const named = scenarioSpecs('test/scenarios/21-named-port-80-from-y.yaml', 1).get('node-1')!;
const stacked = scenarioSpecs('test/scenarios/13-stacked-policies-union.yaml', 1).get('node-1')!;

/** iptables-save without the comments iptables adds and without packet counters. */
function rules(ns: ReturnType<typeof createNetns>): string {
  return ns.exec(['iptables-save', '-t', 'filter']).split('\n').filter((l) => !l.startsWith('#')).map((l) => l.replace(/\[\d+:\d+\]/, '')).join('\n');
}

function sets(ns: ReturnType<typeof createNetns>): string {
  return ns.exec(['ipset', 'save']).split('\n').map((l) => l.replace(/ initval 0x[0-9a-f]+/, '')).sort().join('\n');
}

function withMembers(spec: CompiledPolicySetSpec, setName: string, members: string[]): CompiledPolicySetSpec {
  return { ...spec, contentHash: `sha256:${'1'.repeat(64)}`, ipSets: spec.ipSets.map((s) => (s.name === setName ? { ...s, members } : s)) };
}

class FailingRunner implements KernelRunner {
  private readonly inner: KernelRunner;
  private readonly failOn: RegExp;
  constructor(inner: KernelRunner, failOn: RegExp) {
    this.inner = inner;
    this.failOn = failOn;
  }
  run(command: string, args: string[], input?: string): Promise<RunResult> {
    if (this.failOn.test(`${command} ${args.join(' ')}`)) return Promise.resolve({ stdout: '', stderr: 'injected failure', exitCode: 1 });
    return this.inner.run(command, args, input);
  }
}

// Both runners: a process per call (tests, `fencer verify`) and the agent's long-lived shell.
for (const [label, makeRunner] of [['a process per call', (ns: string) => new ExecRunner(['ip', 'netns', 'exec', ns])], ['one shell', (ns: string) => new ShellRunner(['ip', 'netns', 'exec', ns])]] as const) test(`apply, re-apply, member change, rule change and cleanup leave exactly the expected kernel state (${label})`, async () => {
  await withNetns(async (ns) => {
    const dp = new LinuxDataplane({ runner: makeRunner(ns.name) });
    try {
      await applyChangeCleanup(dp, ns);
    } finally {
      await dp.close();
    }
  });
});

async function applyChangeCleanup(dp: LinuxDataplane, ns: ReturnType<typeof createNetns>): Promise<void> {
  {
    const first = await dp.apply(named);
    assert.equal(first.kind, 'rules');
    const rulesAfterFirst = rules(ns);
    assert.match(rulesAfterFirst, /-A FORWARD -m conntrack --ctstate NEW -m comment --comment "fencer:forward-hook" -j FENCER-FORWARD/);
    assert.match(rulesAfterFirst, /-A FENCER-INGRESS -d 10\.244\.1\.10\/32 .* -j FENCER-I-/);
    assert.match(rulesAfterFirst, /-m set --match-set FENCER-n-[0-9a-f]{16} dst,dst/);
    assert.match(sets(ns), /add FENCER-n-[0-9a-f]{16} 10\.244\.1\.10,tcp:80/);

    const again = await dp.apply(named);
    assert.equal(again.kind, 'noop');
    assert.equal(rules(ns), rulesAfterFirst, 're-applying the same spec changes no rule');
    assert.deepEqual(await dp.drift(named), []);

    const peer = named.targets[0].ingress!.rules[0].peers[0];
    const moved = withMembers(named, peer, ['10.244.2.11', '10.244.2.99']);
    const members = await dp.apply(moved);
    assert.equal(members.kind, 'members');
    assert.equal(rules(ns), rulesAfterFirst, 'a member-only change touches no iptables rule');
    assert.match(sets(ns), /add FENCER-p-[0-9a-f]{16} 10\.244\.2\.99/);
    assert.doesNotMatch(sets(ns), /10\.244\.1\.12\n/);

    const changed = await dp.apply(stacked);
    assert.equal(changed.kind, 'rules');
    assert.deepEqual(await dp.drift(stacked), []);
    assert.doesNotMatch(sets(ns), /FENCER-n-/, 'sets no longer referenced are destroyed');
    const oldChain = `FENCER-I-${named.targets[0].podSet.slice(2)}`;
    if (!stacked.targets.some((t) => t.podSet === named.targets[0].podSet)) assert.ok(!rules(ns).includes(oldChain), 'chains no longer wanted are deleted');
    assert.deepEqual(generations(rules(ns)), { root: ['FENCER-TOP-1'], chains: [1] }, 'the rule change wrote generation 1 and removed generation 0');

    const back = await dp.apply(named);
    assert.equal(back.kind, 'rules');
    await dp.settled();
    assert.deepEqual(generations(rules(ns)), { root: ['FENCER-TOP'], chains: [0] });
    assert.deepEqual(await dp.drift(named), []);

    await dp.cleanup();
    assert.doesNotMatch(rules(ns), /FENCER/);
    assert.equal(sets(ns).trim(), '');
  }
}

/** Where FENCER-FORWARD goes, and the generations of the other Fencer chains. */
function generations(save: string): { root: string[]; chains: number[] } {
  const root = [...save.matchAll(/^-A FENCER-FORWARD .* -g (\S+)$/gm)].map((m) => m[1]);
  const chains = [...save.matchAll(/^:(FENCER-\S+) /gm)].map((m) => m[1]).filter((c) => c !== 'FENCER-FORWARD');
  return { root, chains: [...new Set(chains.map((c) => (c.endsWith('-1') ? 1 : 0)))].sort() };
}

test('a cleanup that fails leaves the old generation unreachable; the next apply removes it before anything else', async () => {
  await withNetns(async (ns) => {
    const real = new ExecRunner(['ip', 'netns', 'exec', ns.name]);
    let failed = 0;
    const runner: KernelRunner = {
      run: (cmd, args, input) => {
        // The switch only adds; the cleanup is the restore that deletes chains.
        if (/iptables-(nft|legacy)-restore/.test(cmd) && /^-X /m.test(input ?? '') && failed++ === 0) return Promise.resolve({ stdout: '', stderr: 'injected failure', exitCode: 1 });
        return real.run(cmd, args, input);
      },
    };
    const dp = new LinuxDataplane({ runner });
    await dp.apply(named);
    const switched = await dp.apply(stacked);
    assert.equal(switched.kind, 'rules');
    await dp.settled();
    assert.equal(failed, 1);
    assert.deepEqual(generations(rules(ns)), { root: ['FENCER-TOP-1', 'FENCER-TOP'], chains: [0, 1] }, 'both generations, the new one first');
    const drift = await dp.drift(stacked);
    assert.equal(drift[0], 'chains the live tree does not reach are left over');
    // The old generation's sets go with its chains: only those chains still reference them.
    assert.deepEqual(drift.slice(1).map((d) => d.replace(/: .*/, '')), named.ipSets.some((s) => !stacked.ipSets.some((t) => t.name === s.name)) ? ['sets no rule references are left over'] : []);
    const repaired = await dp.apply(stacked);
    assert.notEqual(repaired.kind, 'rules', 'the live generation already holds the spec');
    await dp.settled();
    assert.deepEqual(generations(rules(ns)), { root: ['FENCER-TOP-1'], chains: [1] });
    assert.deepEqual(await dp.drift(stacked), []);
  });
});

test('a failing iptables-restore leaves the previous generation enforced and no new sets behind', async () => {
  await withNetns(async (ns) => {
    const real = new ExecRunner(['ip', 'netns', 'exec', ns.name]);
    await new LinuxDataplane({ runner: real }).apply(named);
    const before = { rules: rules(ns), sets: sets(ns) };
    const failing = new LinuxDataplane({ runner: new FailingRunner(real, /iptables-nft-restore|iptables-legacy-restore/) });
    await assert.rejects(failing.apply(stacked), /iptables-restore: .*injected failure/);
    assert.equal(rules(ns), before.rules);
    assert.equal(sets(ns), before.sets);
  });
});

test('a failing ipset restore of a member change rolls the members back', async () => {
  await withNetns(async (ns) => {
    const real = new ExecRunner(['ip', 'netns', 'exec', ns.name]);
    await new LinuxDataplane({ runner: real }).apply(named);
    const before = sets(ns);
    // The add goes through, then the restore "fails": the rollback must remove what was added.
    let calls = 0;
    const flaky: KernelRunner = {
      run: async (cmd, args, input) => {
        const r = await real.run(cmd, args, input);
        if (cmd === 'ipset' && args[0] === 'restore' && calls++ === 0) return { ...r, exitCode: 1, stderr: 'injected failure after apply' };
        return r;
      },
    };
    const peer = named.targets[0].ingress!.rules[0].peers[0];
    await assert.rejects(new LinuxDataplane({ runner: flaky }).apply(withMembers(named, peer, ['10.244.2.11', '10.244.2.99'])), /ipset restore/);
    assert.equal(sets(ns), before);
  });
});

test('sets left by an apply killed midway are removed by the next apply', async () => {
  await withNetns(async (ns) => {
    const dp = new LinuxDataplane({ runner: new ExecRunner(['ip', 'netns', 'exec', ns.name]) });
    await dp.apply(named);
    // What a kill -9 between the set build and the rule switch leaves: a complete set nobody references.
    ns.exec(['ipset', 'create', 'FENCER-p-00000000deadbeef-1', 'hash:ip']);
    ns.exec(['ipset', 'create', 'FENCER-p-0000000000000001', 'hash:net']);
    const restarted = new LinuxDataplane({ runner: new ExecRunner(['ip', 'netns', 'exec', ns.name]) });
    // The drift check sees them too, so a node with no change coming still gets rid of them.
    assert.deepEqual(await restarted.drift(named), ['sets no rule references are left over: FENCER-p-0000000000000001, FENCER-p-00000000deadbeef-1']);
    const r = await restarted.apply(named);
    assert.equal(r.kind, 'members');
    await restarted.settled();
    assert.doesNotMatch(sets(ns), /deadbeef|0000000000000001/);
  });
});

test('drift is detected and repaired: a flushed chain, a flushed set, a deleted FORWARD jump', async () => {
  await withNetns(async (ns) => {
    const dp = new LinuxDataplane({ runner: new ExecRunner(['ip', 'netns', 'exec', ns.name]) });
    await dp.apply(named);
    const good = { rules: rules(ns), sets: sets(ns) };
    ns.exec(['iptables', '-F', 'FENCER-INGRESS']);
    const peerSet = named.targets[0].ingress!.rules[0].peers[0];
    ns.exec(['ipset', 'flush', `FENCER-${peerSet}`]);
    ns.exec(['iptables', '-D', 'FORWARD', '-m', 'conntrack', '--ctstate', 'NEW', '-m', 'comment', '--comment', 'fencer:forward-hook', '-j', 'FENCER-FORWARD']);
    const drift = await dp.drift(named);
    assert.ok(drift.some((d) => /FORWARD jump/.test(d)));
    assert.ok(drift.some((d) => /chains/.test(d)));
    await dp.apply(named);
    assert.deepEqual(await dp.drift(named), []);
    assert.equal(sets(ns).replace(/FENCER-p-([0-9a-f]{16})(-1)?/g, 'P-$1'), good.sets.replace(/FENCER-p-([0-9a-f]{16})(-1)?/g, 'P-$1'));
  });
});

test('the FORWARD jump goes right after kube-proxy\'s KUBE-SERVICES jump', async () => {
  await withNetns(async (ns) => {
    ns.exec(['iptables', '-N', 'KUBE-SERVICES']);
    ns.exec(['iptables', '-A', 'FORWARD', '-j', 'ACCEPT', '-s', '192.0.2.1']);
    ns.exec(['iptables', '-A', 'FORWARD', '-m', 'conntrack', '--ctstate', 'NEW', '-j', 'KUBE-SERVICES']);
    ns.exec(['iptables', '-A', 'FORWARD', '-j', 'ACCEPT', '-s', '192.0.2.2']);
    const dp = new LinuxDataplane({ runner: new ExecRunner(['ip', 'netns', 'exec', ns.name]) });
    await dp.apply(named);
    const forward = ns.exec(['iptables', '-S', 'FORWARD']).split('\n').filter((l) => l.startsWith('-A'));
    assert.match(forward[1], /KUBE-SERVICES/);
    assert.match(forward[2], /FENCER-FORWARD/);
    await dp.cleanup();
    const after = ns.exec(['iptables', '-S', 'FORWARD']);
    assert.doesNotMatch(after, /FENCER/);
    assert.match(after, /KUBE-SERVICES/, 'cleanup leaves what others own');
  });
});

test('a kernel read ahead of the first apply, or by a clean drift check, spares the next apply a read; a stale one fails whole and is retried', async () => {
  await withNetns(async (ns) => {
    const calls: string[] = [];
    const inner = new ExecRunner(['ip', 'netns', 'exec', ns.name]);
    const runner: KernelRunner = { run: (c, a, i) => { calls.push(`${c} ${a[0]}`); return inner.run(c, a, i); } };
    const dp = new LinuxDataplane({ runner });
    await dp.prepare();
    calls.length = 0;
    await dp.apply(named);
    assert.ok(!calls.some((c) => /save/.test(c)), `the first apply read the kernel again: ${calls.join(', ')}`);
    assert.deepEqual(await dp.drift(named), []);
    calls.length = 0;
    const peerSet = named.targets[0].ingress!.rules[0].peers[0];
    await dp.apply(withMembers(named, peerSet, ['10.9.9.9']));
    assert.deepEqual(calls, ['ipset restore'], 'after a clean drift check a member change is one ipset restore');
    assert.match(sets(ns), /add FENCER-p-\S+ 10\.9\.9\.9/);

    // Read ahead, then someone else removes everything: the plan built on the stale read fails as a
    // whole (its set is gone) and changes nothing; the retry reads the kernel and succeeds.
    const fresh = new LinuxDataplane({ runner: inner });
    await fresh.prepare();
    await new LinuxDataplane({ runner: inner }).cleanup();
    const before = { rules: rules(ns), sets: sets(ns) };
    const next = withMembers(named, peerSet, ['10.9.9.8']);
    await assert.rejects(fresh.apply(next), /ipset restore/);
    assert.deepEqual({ rules: rules(ns), sets: sets(ns) }, before);
    await fresh.apply(next);
    assert.deepEqual(await fresh.drift(next), []);
  });
});

test('a drift check that overlapped an apply leaves no stale state behind for the next apply to trust', async () => {
  await withNetns(async (ns) => {
    const inner = new ExecRunner(['ip', 'netns', 'exec', ns.name]);
    let holdApply: Promise<void> | undefined;
    let holdRead: Promise<void> | undefined;
    const runner: KernelRunner = {
      async run(c, a, i) {
        if (/iptables.*restore/.test(c) && holdApply) await holdApply;
        const r = await inner.run(c, a, i);
        // The drift check's read sees the kernel before the apply, and answers after it.
        if (/save/.test(c) && holdRead) await holdRead;
        return r;
      },
    };
    const dp = new LinuxDataplane({ runner });
    await dp.apply(named);
    // A rule change that builds no set: until its iptables-restore commits, the kernel holds `named` exactly.
    const retargeted = structuredClone(named);
    Object.assign(retargeted.targets[0].ingress!.rules[0], { anyPort: false, ports: [{ protocol: 'UDP', port: 5353 }] });
    retargeted.contentHash = `sha256:${'2'.repeat(64)}`;
    let releaseApply!: () => void;
    let releaseRead!: () => void;
    holdApply = new Promise((r) => (releaseApply = r));
    holdRead = new Promise((r) => (releaseRead = r));
    const applying = dp.apply(retargeted);
    await new Promise((r) => setTimeout(r, 50));
    const drifting = dp.drift(named);
    await new Promise((r) => setTimeout(r, 200));
    holdApply = undefined;
    releaseApply();
    await applying;
    holdRead = undefined;
    releaseRead();
    await drifting;
    assert.equal((await dp.apply(retargeted)).kind, 'noop', 'the next apply planned against what the kernel holds');
  });
});

test('the shell follows a namespace deleted and made again under the same name', async () => {
  await withNetns(async (ns) => {
    const runner = new ShellRunner(['ip', 'netns', 'exec', ns.name], { netns: ns.name });
    try {
      assert.equal((await runner.run('ipset', ['create', 'FENCER-old', 'hash:ip'])).exitCode, 0);
      execFileSync('ip', ['netns', 'del', ns.name]);
      execFileSync('ip', ['netns', 'add', ns.name]);
      const listed = await runner.run('ipset', ['list', '-n']);
      assert.equal(listed.exitCode, 0);
      assert.doesNotMatch(listed.stdout, /FENCER-old/, 'the shell still works in the deleted namespace');
    } finally {
      await runner.close();
    }
  });
});

test('with legacy iptables rule changes rewrite the live generation in place and leave nothing to clean', async () => {
  await withNetns(async (ns) => {
    const dp = new LinuxDataplane({ runner: new ShellRunner(['ip', 'netns', 'exec', ns.name], { netns: ns.name }), tools: toolsFor('legacy') });
    try {
      const legacyRules = () => ns.exec(['iptables-legacy-save', '-t', 'filter']);
      for (const spec of [named, stacked, named]) {
        await dp.apply(spec);
        await dp.settled();
        assert.deepEqual(generations(legacyRules()), { root: ['FENCER-TOP'], chains: [0] });
        assert.deepEqual(await dp.drift(spec), []);
      }
      await dp.cleanup();
      assert.doesNotMatch(legacyRules(), /FENCER/);
    } finally {
      await dp.close();
    }
  });
});
