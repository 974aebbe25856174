// The nftables dataplane with real nft in network namespaces: what the kernel holds after each
// kind of apply, restarts, drift, failures and kills (bare namespaces), then real TCP/UDP packets
// between pods (netns/topology.ts): the scenario files' grids, established connections across a
// member-only change, and other tables' accepts. Every test removes what it made, also on failure.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import type { CompiledPolicySetSpec } from '../../crds/types.ts';
import { NftablesDataplane, createNftablesDataplane } from '../../agent/dataplane/nftables/dataplane.ts';
import { commitCommand, INCOMPLETE } from '../../agent/dataplane/nftables/commit.ts';
import { NftSession } from '../../agent/dataplane/nftables/session.ts';
import { parseNftJson } from '../../agent/dataplane/nftables/live-state.ts';
import { planNft } from '../../agent/dataplane/nftables/plan.ts';
import { renderTable } from '../../agent/dataplane/nftables/render.ts';
import { desiredState } from '../../agent/dataplane/nftables/translate.ts';
import { ExecRunner } from '../../agent/dataplane/linux/runner.ts';
import { ShellRunner } from '../../agent/dataplane/linux/shell-runner.ts';
import { loadScenario, type Probe } from '../../matrix/scenario.ts';
import { nodeCIDR, ScenarioWorld, type PodInfo } from '../../matrix/world.ts';
import { parseGrid, type Grid } from '../../matrix/grid.ts';
import { observeGrid, reportGrid, serves } from '../../matrix/run.ts';
import { oracleAllows } from '../../oracle/oracle.ts';
import { PolicyCompiler } from '../../operator/compile/compiler.ts';
import { NODE_BIN } from '../../netns/ip.ts';
import { Topology, type PodHandle } from '../../netns/topology.ts';
import { createNetns, withNetns } from '../helpers/netns.ts';
import { scenarioSpecs } from '../helpers/scenario-specs.ts';

type Netns = ReturnType<typeof createNetns>;

const named = scenarioSpecs('test/scenarios/21-named-port-80-from-y.yaml', 1).get('node-1')!;
const stacked = scenarioSpecs('test/scenarios/13-stacked-policies-union.yaml', 1).get('node-1')!;
const peer = named.targets[0].ingress!.rules[0].peers[0];
const podSet = named.targets[0].podSet;

function withMembers(spec: CompiledPolicySetSpec, set: string, members: string[]): CompiledPolicySetSpec {
  return { ...spec, contentHash: `sha256:${'1'.repeat(64)}`, ipSets: spec.ipSets.map((s) => (s.name === set ? { ...s, members } : s)) };
}

const nsRunner = (ns: string) => new ExecRunner(['ip', 'netns', 'exec', ns]);

function hasTable(ns: Netns): boolean {
  return /^table inet fencer$/m.test(ns.exec(['nft', 'list', 'tables']));
}

/** Every rule of Fencer's table as chain, handle and comment: a rule flushed and written again gets a new handle. */
function ruleHandles(ns: Netns): string[] {
  const items = (JSON.parse(ns.exec(['nft', '-j', 'list', 'table', 'inet', 'fencer'])) as { nftables: Array<Record<string, Record<string, unknown>>> }).nftables;
  return items.filter((i) => i.rule).map((i) => `${String(i.rule.chain)} #${String(i.rule.handle)} ${String(i.rule.comment)}`);
}

/** The table in a form that does not depend on element order or handles. */
function tableState(ns: Netns): string {
  const live = parseNftJson(ns.exec(['nft', '-j', 'list', 'table', 'inet', 'fencer']));
  return JSON.stringify({
    sets: [...live.sets].map(([n, s]) => [n, s.decl, [...s.elements].sort()]).sort(),
    maps: [...live.maps].map(([n, m]) => [n, m.decl, [...m.entries].sort()]).sort(),
    chains: [...live.chains].map(([n, c]) => [n, c.base, c.hashes]).sort(),
    foreign: live.foreign,
  });
}

// A table someone else owns, with a rule: no apply, repair or cleanup may touch it.
const OTHER = 'table inet other {\n\tchain guard {\n\t\ttype filter hook forward priority 10; policy accept;\n\t\ttcp dport 9 accept comment "not fencer\'s"\n\t}\n}\n';
const otherTable = (ns: Netns) => ns.exec(['nft', 'list', 'table', 'inet', 'other']);

for (const [label, makeRunner, session] of [
  ['a process per call', (ns: string) => nsRunner(ns), false],
  ['one shell', (ns: string) => new ShellRunner(['ip', 'netns', 'exec', ns], { netns: ns }), false],
  ['one shell, member changes through an nft session', (ns: string) => new ShellRunner(['ip', 'netns', 'exec', ns], { netns: ns }), true],
] as const) {
  test(`apply, re-apply, member change, pod change, rule change and cleanup leave exactly the expected table, and no other table changes (${label})`, async () => {
    await withNetns(async (ns) => {
      ns.exec(['nft', '-f', '-'], OTHER);
      const other = otherTable(ns);
      const dp = new NftablesDataplane({ runner: makeRunner(ns.name), session: session ? new NftSession(['ip', 'netns', 'exec', ns.name]) : undefined });
      try {
        const first = await dp.apply(named);
        assert.equal(first.kind, 'rules');
        assert.ok(first.iptablesMs > 0 && first.ipsetMs === 0, 'a rule change reports its nft time as rule time');
        const rules = ruleHandles(ns);
        assert.equal(rules.length, 5);
        const text = ns.exec(['nft', 'list', 'table', 'inet', 'fencer']);
        assert.match(text, /type filter hook forward priority filter - 5; policy accept;/);
        assert.match(text, new RegExp(`10\\.244\\.1\\.10 : jump ingress-${podSet}`));
        assert.match(text, /10\.244\.1\.10 \. tcp \. 80/);

        const again = await dp.apply(named);
        assert.equal(again.kind, 'noop');
        assert.deepEqual(ruleHandles(ns), rules, 're-applying the same spec touches nothing');
        assert.deepEqual(await dp.drift(named), []);

        const moved = await dp.apply(withMembers(named, peer, ['10.244.2.11', '10.244.2.99']));
        assert.equal(moved.kind, 'members');
        assert.ok(moved.ipsetMs > 0 && moved.iptablesMs === 0, 'a member change reports its nft time as set time');
        assert.deepEqual(ruleHandles(ns), rules, 'a member-only change touches no rule');
        assert.match(ns.exec(['nft', 'list', 'set', 'inet', 'fencer', peer]), /elements = \{ 10\.244\.2\.11, 10\.244\.2\.99 \}/);

        const joined = withMembers(named, podSet, ['10.244.1.10', '10.244.1.77']);
        assert.equal((await dp.apply(joined)).kind, 'members', 'a pod joining a target is a map entry');
        assert.deepEqual(ruleHandles(ns), rules);
        assert.match(ns.exec(['nft', 'list', 'map', 'inet', 'fencer', 'ingress-pods']), new RegExp(`10\\.244\\.1\\.77 : jump ingress-${podSet}`));

        const changed = await dp.apply(stacked);
        assert.equal(changed.kind, 'rules');
        assert.deepEqual(await dp.drift(stacked), []);
        assert.doesNotMatch(ns.exec(['nft', 'list', 'table', 'inet', 'fencer']), /set n-/, 'sets no longer referenced are deleted');

        assert.equal((await dp.apply(named)).kind, 'rules');
        assert.deepEqual(await dp.drift(named), []);
        assert.equal(otherTable(ns), other);

        await dp.cleanup();
        assert.equal(hasTable(ns), false);
        assert.equal(otherTable(ns), other, 'cleanup leaves the other table as it was');
        await dp.cleanup();
        assert.deepEqual(await dp.drift(named), ['the table inet fencer is missing']);
      } finally {
        await dp.close();
      }
    });
  });
}

test('a restarted agent finds its table in place and changes nothing', async () => {
  await withNetns(async (ns) => {
    const before = createNftablesDataplane({ netns: ns.name });
    try {
      await before.apply(named);
    } finally {
      await before.close();
    }
    const ruleset = ns.exec(['nft', '-a', 'list', 'ruleset']);
    const calls: string[] = [];
    const shell = new ShellRunner(['ip', 'netns', 'exec', ns.name], { netns: ns.name });
    const restarted = createNftablesDataplane({ runner: { run: (c, a, i) => { calls.push(`${c} ${a[0]}`); return shell.run(c, a, i); }, close: () => shell.close() } });
    try {
      await restarted.prepare();
      const r = await restarted.apply(structuredClone(named));
      assert.equal(r.kind, 'noop');
      assert.deepEqual(calls, ['nft -j'], 'one read, no write');
      assert.equal(ns.exec(['nft', '-a', 'list', 'ruleset']), ruleset, 'same table, same handles');
    } finally {
      await restarted.close();
    }
  });
});

test('drift is found and repaired: missing and extra elements, a flushed chain, a lost map entry, a rule added by hand, a dropped table', async () => {
  await withNetns(async (ns) => {
    const dp = new NftablesDataplane({ runner: nsRunner(ns.name) });
    await dp.apply(named);
    const good = tableState(ns);
    const nft = (...args: string[]) => ns.exec(['nft', ...args]);
    nft('delete', 'element', 'inet', 'fencer', peer, '{ 10.244.2.11 }');
    nft('add', 'element', 'inet', 'fencer', peer, '{ 10.9.9.9 }');
    nft('flush', 'chain', 'inet', 'fencer', `ingress-${podSet}`);
    nft('delete', 'element', 'inet', 'fencer', 'ingress-pods', '{ 10.244.1.10 }');
    nft('add', 'rule', 'inet', 'fencer', 'forward', 'tcp', 'dport', '22', 'accept');
    const drift = await dp.drift(named);
    assert.ok(drift.some((d) => d.includes(`set ${peer}: 1 missing (10.244.2.11)`) && d.includes('1 extra (10.9.9.9)')), drift.join('\n'));
    assert.ok(drift.includes(`chain ingress-${podSet} differs`), drift.join('\n'));
    assert.ok(drift.includes('chain forward differs'), drift.join('\n'));
    assert.ok(drift.some((d) => d.startsWith('map ingress-pods: 1 missing')), drift.join('\n'));
    assert.equal((await dp.apply(named)).kind, 'rules');
    assert.deepEqual(await dp.drift(named), []);
    assert.equal(tableState(ns), good);

    // The hook itself changed by hand: the table is replaced whole.
    nft('add', 'chain', 'inet', 'fencer', 'forward', '{ type filter hook forward priority -5; policy drop; }');
    assert.deepEqual(await dp.drift(named), ['chain forward is hooked as "filter forward -5 drop" (wants "filter forward -5 accept")']);
    await dp.apply(named);
    assert.equal(tableState(ns), good);

    nft('delete', 'table', 'inet', 'fencer');
    assert.deepEqual(await dp.drift(named), ['the table inet fencer is missing']);
    await dp.apply(named);
    assert.equal(tableState(ns), good);
  });
});

test('a failing nft -f changes nothing; a change planned on a stale view fails whole and the table is replaced instead', async () => {
  await withNetns(async (ns) => {
    const real = nsRunner(ns.name);
    await new NftablesDataplane({ runner: real }).apply(named);
    const before = ns.exec(['nft', '-a', 'list', 'ruleset']);
    const commits: string[] = [];
    const failing = new NftablesDataplane({ runner: { run: (c, a, i) => (c === 'sh' ? (commits.push(i!), Promise.resolve({ stdout: '', stderr: 'injected failure', exitCode: 1 })) : real.run(c, a, i)) } });
    await assert.rejects(failing.apply(stacked), /nft -f: .*injected failure/);
    assert.equal(ns.exec(['nft', '-a', 'list', 'ruleset']), before);
    assert.equal(commits.length, 2, 'the change, then the whole table');
    assert.ok(!commits[0].startsWith('table inet fencer\n') && commits[1].startsWith('table inet fencer\ndelete table inet fencer\n'));

    // The agent trusts its last apply; someone removes a member by hand meanwhile. The next member
    // change deletes that member too: nft refuses that transaction whole, and the table is written
    // whole instead, in one more transaction.
    const seen: string[] = [];
    const dp = new NftablesDataplane({ runner: { run: (c, a, i) => { if (c === 'sh') seen.push(i!.split('\n')[0]); return real.run(c, a, i); } } });
    await dp.apply(named);
    ns.exec(['nft', 'delete', 'element', 'inet', 'fencer', peer, '{ 10.244.2.11 }']);
    const next = withMembers(named, peer, ['10.244.2.12', '10.244.2.50']);
    seen.length = 0;
    assert.equal((await dp.apply(next)).kind, 'rules');
    assert.deepEqual(seen, [`delete element inet fencer ${peer} {`, 'table inet fencer']);
    assert.deepEqual(await dp.drift(next), []);
  });
});

test('a script cut short (the agent died while sending it) is never committed, at any point', async () => {
  await withNetns(async (ns) => {
    ns.exec(['nft', '-f', '-'], OTHER);
    const dp = new NftablesDataplane({ runner: nsRunner(ns.name) });
    await dp.apply(named);
    const held = tableState(ns);
    const change = planNft(desiredState(stacked), await dp.read()).script;
    const whole = renderTable(desiredState(stacked));
    // Without the guard a cut can commit: the whole-table script cut after its delete leaves no table.
    ns.exec(['nft', '-f', '-'], whole.split('\n').slice(0, 2).join('\n'));
    assert.equal(hasTable(ns), false, 'nft commits a prefix that parses');
    dp.forget();
    await dp.apply(named);
    const [cmd, args] = commitCommand();
    for (const script of [change, whole]) {
      const cuts = new Set<number>();
      for (let i = script.indexOf('\n'); i >= 0; i = script.indexOf('\n', i + 1)) cuts.add(i + 1);
      for (let k = 0; k < script.length; k += 7) cuts.add(k);
      for (const k of [...cuts].filter((c) => c < script.length)) {
        const r = await nsRunner(ns.name).run(cmd, args, script.slice(0, k));
        assert.notEqual(r.exitCode, 0, `cut at ${k}: ${r.stderr}`);
        assert.match(r.stderr, new RegExp(INCOMPLETE));
      }
      assert.equal(tableState(ns), held);
    }
    assert.match(otherTable(ns), /not fencer's/);
  });
});

/** A spec whose one ingress rule admits `n` peers from 10.<base>.0.0 on `port`. */
function bigSpec(base: number, n: number, port: number): CompiledPolicySetSpec {
  const spec = structuredClone(named);
  const members = Array.from({ length: n }, (_, i) => `10.${base}.${i >> 8}.${i & 255}`);
  spec.ipSets = spec.ipSets.map((s) => (s.name === peer ? { ...s, members } : s));
  Object.assign(spec.targets[0].ingress!.rules[0], { ports: [{ protocol: 'TCP', port }] });
  return spec;
}

test('kill -9 of nft in the middle of a transaction leaves the old table or the new one, never a mix', async (t) => {
  await withNetns(async (ns) => {
    const [a, b] = [bigSpec(100, 30000, 80), bigSpec(101, 30000, 81)];
    const dp = new NftablesDataplane({ runner: nsRunner(ns.name) });
    await dp.apply(a);
    const judge = new NftablesDataplane({ runner: nsRunner(ns.name) });
    const nftRun = (script: string, killAfterMs?: number) => new Promise<number>((resolve) => {
      // `ip netns exec` execs nft in its own place: the pid is nft's.
      const child = spawn('ip', ['netns', 'exec', ns.name, 'nft', '-f', '-'], { stdio: ['pipe', 'ignore', 'ignore'] });
      const started = performance.now();
      child.stdin.on('error', () => undefined);
      child.stdin.end(script);
      const timer = killAfterMs === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), killAfterMs);
      child.on('exit', () => {
        clearTimeout(timer);
        resolve(performance.now() - started);
      });
    });
    const scripts = { change: planNft(desiredState(b), await dp.read()).script, whole: renderTable(desiredState(b)) };
    const seen = { old: 0, new: 0 };
    for (const [kind, script] of Object.entries(scripts)) {
      const ms = await nftRun(script);
      t.diagnostic(`${kind}: nft -f of ${script.length} bytes took ${Math.round(ms)} ms`);
      assert.deepEqual(await judge.drift(b), [], `${kind}: the script applies when not killed`);
      await judge.apply(a);
      for (let i = 0; i < 10; i++) {
        await nftRun(script, (ms * i) / 9);
        const [old, fresh] = [await judge.drift(a), await judge.drift(b)];
        assert.ok(old.length === 0 || fresh.length === 0, `${kind} killed at ${Math.round((ms * i) / 9)} of ${Math.round(ms)} ms: neither generation\n${old.join('\n')}`);
        if (old.length === 0) seen.old++;
        else {
          seen.new++;
          await judge.apply(a);
        }
      }
    }
    t.diagnostic(`kills that left the old table: ${seen.old}, the new one: ${seen.new}`);
    assert.ok(seen.old > 0 && seen.new > 0, `some kills should land before the commit and some after: ${JSON.stringify(seen)}`);
  });
});

test('kill -9 of the agent in the middle of an apply leaves the old table or the new one', async (t) => {
  await withNetns(async (ns) => {
    const [a, b] = [bigSpec(100, 30000, 80), bigSpec(101, 30000, 81)];
    const judge = new NftablesDataplane({ runner: nsRunner(ns.name) });
    await judge.apply(a);
    const agent = `import { createNftablesDataplane } from ${JSON.stringify(new URL('../../agent/dataplane/nftables/dataplane.ts', import.meta.url).pathname)};
      let input = ''; for await (const c of process.stdin) input += c;
      const dp = createNftablesDataplane({ netns: ${JSON.stringify(ns.name)} });
      await dp.prepare();
      process.stdout.write('start\\n');
      const t = performance.now(); await dp.apply(JSON.parse(input)); process.stdout.write('done ' + Math.round(performance.now() - t) + '\\n');
      await dp.close();`;
    const run = (killAfterMs?: number) => new Promise<string>((resolve) => {
      const child = spawn(NODE_BIN, ['--input-type=module', '-e', agent], { stdio: ['pipe', 'pipe', 'inherit'] });
      let out = '';
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (killAfterMs !== undefined && out === 'start\n') setTimeout(() => child.kill('SIGKILL'), killAfterMs);
      });
      child.on('exit', () => resolve(out));
      child.stdin.end(JSON.stringify(b));
    });
    /** Until the killed agent's shell, and the nft it may still run, are gone from the namespace. */
    const settled = async () => {
      for (let i = 0; i < 200; i++) {
        if (execFileSync('ip', ['netns', 'pids', ns.name], { encoding: 'utf8' }).trim() === '') return;
        await new Promise((r) => setTimeout(r, 25));
      }
      throw new Error('the killed agent left processes in the namespace');
    };
    const ms = Number(/done (\d+)/.exec(await run())?.[1]);
    assert.ok(ms > 0);
    assert.deepEqual(await judge.drift(b), []);
    await judge.apply(a);
    const seen = { old: 0, new: 0 };
    for (let i = 0; i < 8; i++) {
      await run((ms * i) / 6);
      await settled();
      const [old, fresh] = [await judge.drift(a), await judge.drift(b)];
      assert.ok(old.length === 0 || fresh.length === 0, `killed at ${Math.round((ms * i) / 6)} of ${ms} ms: neither generation\n${old.join('\n')}`);
      if (old.length === 0) seen.old++;
      else {
        seen.new++;
        await judge.apply(a);
      }
    }
    t.diagnostic(`an apply takes ${ms} ms; kills that left the old table: ${seen.old}, the new one: ${seen.new}`);
    assert.ok(seen.old > 0 && seen.new > 0, JSON.stringify(seen));
  });
});

// ---- Real packets ----

const topologies = new Set<Topology>();
after(async () => {
  for (const t of topologies) await t.destroy();
});

async function topology(prefix: string, nodes: string[]): Promise<Topology> {
  const topo = await Topology.create({ prefix, nodes: nodes.map((name, i) => ({ name, podCIDR: nodeCIDR(i) })) });
  topologies.add(topo);
  return topo;
}

async function dropTopology(topo: Topology): Promise<void> {
  topologies.delete(topo);
  await topo.destroy();
}

/** Every source pod probes every pod that serves the port, all sources at once. */
async function probeGrid(topo: Topology, pods: PodInfo[], handles: Map<string, PodHandle>, probe: Probe): Promise<Grid> {
  const rows = await Promise.all(pods.map(async (src) => {
    const targets = pods.filter((dst) => dst !== src && serves(dst, probe));
    const ok = await topo.probe(handles.get(src.key)!, targets.map((dst) => ({ ip: dst.ip, protocol: probe.protocol as 'TCP' | 'UDP', port: probe.port })), 500);
    const open = new Map(targets.map((dst, i) => [dst.key, ok[i]]));
    return [src.key, new Map(pods.map((dst) => [dst.key, src === dst || (open.get(dst.key) ?? false)]))] as const;
  }));
  return new Map(rows);
}

// Scenarios covering named ports (ingress, egress, differing per pod), ipBlock with except,
// endPort ranges and their bounds, SCTP next to TCP, ingress and egress alone and together, empty
// rule lists, several targets on a node, same-node and cross-node traffic, rule changes and
// relabels (member changes and pods moving between targets) over several steps.
// FENCER_NFT_SCENARIOS=all runs every scenario whose pods stay put (or a comma-separated list).
const SCENARIOS = ['03-deny-all-x', '04-deny-egress-x-a', '05-ingress-x-a-from-pod-b', '13-stacked-policies-union', '18-sctp-allow-does-not-allow-tcp', '19-udp-81-only', '21-named-port-80-from-y', '22-egress-named-port-80', '23-endport-range', '25-egress-ipblock-except', '26-ipblock-except-is-not-deny', '28-egress-and-ingress-both-required', '30-empty-lists', '31-update-then-delete', '32-relabel-pods-and-namespaces', '37-named-port-differs-per-pod', '40-endport-bounds-inclusive', '51-same-node-and-cross-node', '52-return-traffic'];

test('the scenario files hold with real packets through the nftables dataplane, grid for grid', async (t) => {
  const only = process.env.FENCER_NFT_SCENARIOS;
  const files = only === 'all' ? readdirSync('test/scenarios').filter((f) => f.endsWith('.yaml')).map((f) => f.replace(/\.yaml$/, '')) : only ? only.split(',') : SCENARIOS;
  const lines: string[] = [];
  let failed = 0;
  let grids = 0;
  // Scenarios with the same cluster share one topology; each applies on clean tables.
  let current: { layout: string; topo: Topology; handles: Map<string, PodHandle> } | undefined;
  try {
    for (const name of files.sort()) {
      const scenario = loadScenario(`test/scenarios/${name}.yaml`);
      if (scenario.steps.some((s) => s.createPods.length || s.deletePods.length || s.delete.some((d) => d.kind === 'Pod'))) continue;
      const world = new ScenarioWorld(scenario);
      const pods = world.livePods();
      const layout = JSON.stringify([scenario.nodes, pods.map((p) => [p.key, p.spec.node, p.ip, p.spec.ports])]);
      if (current?.layout !== layout) {
        if (current) await dropTopology(current.topo);
        const topo = await topology('nfts', scenario.nodes);
        const handles = new Map<string, PodHandle>();
        for (const p of pods) {
          handles.set(p.key, await topo.addPod(p.spec.node, { name: p.key, ip: p.ip, tcp: p.spec.ports.filter((x) => x.protocol === 'TCP').map((x) => x.port), udp: p.spec.ports.filter((x) => x.protocol === 'UDP').map((x) => x.port) }));
        }
        current = { layout, topo, handles };
      }
      const { topo, handles } = current;
      const dps = new Map(scenario.nodes.map((n) => [n, createNftablesDataplane({ netns: topo.nodeNetns(n) })]));
      try {
        for (const [i, step] of scenario.steps.entries()) {
          world.applyStep(step, `steps[${i}]`);
          const snapshot = world.snapshot();
          const specs = PolicyCompiler.compile(snapshot);
          for (const [node, dp] of dps) await dp.apply(specs.get(node)!);
          for (const probe of scenario.probes.filter((p) => p.protocol !== 'SCTP')) {
            const names = pods.map((p) => p.key);
            const text = step.expect?.get(probe.text);
            const expected = text !== undefined
              ? parseGrid(text, names, (reason) => { throw new Error(`${name} step ${i + 1} ${probe.text}: ${reason}`); })
              : observeGrid(pods, probe, (f) => oracleAllows(snapshot, f));
            grids++;
            const report: string[] = [];
            if (!reportGrid((l) => report.push(l), `${name} step ${i + 1} ${probe.text}`, names, await probeGrid(topo, pods, handles, probe), expected)) {
              failed++;
              lines.push(...report);
            }
          }
        }
      } finally {
        for (const dp of dps.values()) {
          await dp.cleanup();
          await dp.close();
        }
      }
    }
  } finally {
    if (current) await dropTopology(current.topo);
  }
  t.diagnostic(`${grids} grids probed`);
  assert.ok(grids > (only ? 0 : 20), `${grids} grids`);
  assert.equal(failed, 0, lines.join('\n'));
});

const T = 't-00000000000000a1';
const P = 'p-00000000000000b1';

/** Pod 10.244.1.10 on node-1, isolated for ingress: reachable on TCP 80 from the pods in P, from nobody, or from anybody on any port. */
function guarded(rules: 'from-peers' | 'none' | 'anything', peers: string[] = []): CompiledPolicySetSpec {
  const rule = { id: 'r-00000000000000c1', policy: 'x/p', index: 0, anyPeer: false, peers: [P], anyPort: false, ports: [{ protocol: 'TCP' as const, port: 80 }] };
  const ingress = rules === 'none' ? [] : [rules === 'anything' ? { ...rule, anyPeer: true, peers: [], anyPort: true, ports: [] } : rule];
  return {
    nodeName: 'node-1', contentHash: `sha256:${'0'.repeat(64)}`, podCIDRs: ['10.244.1.0/24'], policies: ['x/p'],
    ipSets: [{ name: T, kind: 'ip', origin: 'x/a', members: ['10.244.1.10'] }, { name: P, kind: 'ip', origin: 'clients', members: peers }],
    targets: [{ podSet: T, pods: ['x/a'], policies: ['x/p'], ingress: { rules: ingress } }],
    diagnostics: [], counts: { policies: 1, rules: ingress.length, sets: 2, entries: 1 + peers.length, pods: 1 },
  };
}

/** A TCP connection held open from inside a pod; ping() says whether an echo still comes back. */
function holdConnection(netns: string, ip: string, port: number): { ready: Promise<void>; ping: () => Promise<boolean>; close: () => void } {
  const script = `import net from 'node:net'; import { createInterface } from 'node:readline';
    const sock = net.connect({ host: ${JSON.stringify(ip)}, port: ${port} });
    sock.once('connect', () => process.stdout.write('connected\\n'));
    sock.on('error', () => process.stdout.write('error\\n'));
    let pending;
    sock.on('data', () => { pending?.(); pending = undefined; });
    createInterface({ input: process.stdin }).on('line', (l) => {
      const timer = setTimeout(() => { pending = undefined; process.stdout.write('timeout\\n'); }, 1000);
      pending = () => { clearTimeout(timer); process.stdout.write('echo\\n'); };
      sock.write(l + '\\n');
    });`;
  const child = spawn('ip', ['netns', 'exec', netns, NODE_BIN, '--input-type=module', '-e', script], { stdio: ['pipe', 'pipe', 'inherit'] });
  const waiting: Array<(line: string) => void> = [];
  let buffered = '';
  child.stdout.on('data', (d: Buffer) => {
    buffered += d.toString();
    for (let at = buffered.indexOf('\n'); at >= 0; at = buffered.indexOf('\n')) {
      const line = buffered.slice(0, at);
      buffered = buffered.slice(at + 1);
      waiting.shift()?.(line);
    }
  });
  const next = () => new Promise<string>((r) => waiting.push(r));
  const ready = next().then((l) => assert.equal(l, 'connected'));
  return {
    ready,
    ping: async () => {
      const answer = next();
      child.stdin.write('ping\n');
      return (await answer) === 'echo';
    },
    close: () => child.kill('SIGKILL'),
  };
}

test('established connections keep flowing across a member-only change and a rule change; new ones follow the new rules at once', async () => {
  const topo = await topology('nfte', ['node-1']);
  const node = topo.nodeNetns('node-1');
  const dp = createNftablesDataplane({ netns: node });
  let conn: ReturnType<typeof holdConnection> | undefined;
  try {
    const server = await topo.addPod('node-1', { name: 'x/a', ip: '10.244.1.10', tcp: [80], udp: [] });
    const client = await topo.addPod('node-1', { name: 'y/b', ip: '10.244.1.11', tcp: [], udp: [] });
    const canConnect = async () => (await topo.probe(client, [{ ip: server.ip, protocol: 'TCP', port: 80 }], 500))[0];
    const handles = () => {
      const items = (JSON.parse(execFileSync('ip', ['netns', 'exec', node, 'nft', '-j', 'list', 'table', 'inet', 'fencer'], { encoding: 'utf8' })) as { nftables: Array<Record<string, Record<string, unknown>>> }).nftables;
      return items.filter((i) => i.rule).map((i) => `${String(i.rule.chain)} #${String(i.rule.handle)}`);
    };
    assert.equal((await dp.apply(guarded('from-peers', [client.ip]))).kind, 'rules');
    assert.equal(await canConnect(), true);
    conn = holdConnection(client.netns, server.ip, 80);
    await conn.ready;
    assert.equal(await conn.ping(), true);

    const rules = handles();
    assert.equal((await dp.apply(guarded('from-peers'))).kind, 'members');
    assert.deepEqual(handles(), rules, 'the member change touched no rule');
    assert.equal(await canConnect(), false, 'a new connection from the removed peer is dropped');
    assert.equal(await conn.ping(), true, 'the established one keeps flowing (decisions.md 8)');

    assert.equal((await dp.apply(guarded('none'))).kind, 'rules');
    assert.equal(await canConnect(), false);
    assert.equal(await conn.ping(), true, 'a rule change does not cut it either');

    assert.equal((await dp.apply(guarded('from-peers', [client.ip]))).kind, 'rules');
    assert.equal(await canConnect(), true, 'allowed again, at once');
    await dp.cleanup();
    assert.equal(await canConnect(), true);
  } finally {
    conn?.close();
    await dp.cleanup().catch(() => undefined);
    await dp.close();
    await dropTopology(topo);
  }
});

test("no other table's accept, before or after Fencer's chain, nor iptables' FORWARD ACCEPT, undoes Fencer's drop; Fencer's allow undoes no other drop", async () => {
  const topo = await topology('nfto', ['node-1']);
  const node = topo.nodeNetns('node-1');
  const inNode = (cmd: string[], input?: string) => execFileSync('ip', ['netns', 'exec', node, ...cmd], { encoding: 'utf8', input });
  const dp = createNftablesDataplane({ netns: node });
  try {
    const server = await topo.addPod('node-1', { name: 'x/a', ip: '10.244.1.10', tcp: [80, 81], udp: [] });
    const client = await topo.addPod('node-1', { name: 'y/b', ip: '10.244.1.11', tcp: [], udp: [] });
    const open = async (port: number) => (await topo.probe(client, [{ ip: server.ip, protocol: 'TCP', port }], 500))[0];
    inNode(['nft', '-f', '-'], 'table inet other {\n\tchain early {\n\t\ttype filter hook forward priority -300; policy accept;\n\t\taccept\n\t}\n\tchain late {\n\t\ttype filter hook forward priority 300; policy accept;\n\t\ttcp dport 81 drop\n\t\taccept\n\t}\n}\n');
    inNode(['iptables-nft', '-I', 'FORWARD', '-j', 'ACCEPT']);
    const others = () => inNode(['nft', 'list', 'ruleset']).replace(/table inet fencer \{[\s\S]*?\n\}\n/, '').replace(/counter packets \d+ bytes \d+/g, 'counter');
    const before = others();
    assert.equal(await open(80), true);
    await dp.apply(guarded('none'));
    assert.equal(await open(80), false, 'denied although other chains accept it');
    await dp.apply(guarded('anything'));
    assert.equal(await open(80), true);
    assert.equal(await open(81), false, "Fencer's allow leaves the later table's drop in force");
    await dp.cleanup();
    assert.equal(others(), before, 'the other table and the iptables rule are as they were');
  } finally {
    await dp.cleanup().catch(() => undefined);
    await dp.close();
    await dropTopology(topo);
  }
});
