// The inspect commands against the real apiserver: explain live agrees with explain offline on the
// same objects (and with the oracle), status tells an agent that has not reported from one in sync,
// show and explain name a missing CompiledPolicySet, and verify finds drift injected into a network
// namespace's kernel state (a deleted rule, an extra set member), also through --sandbox.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LinuxDataplane } from '../../agent/dataplane/linux/dataplane.ts';
import { ExecRunner } from '../../agent/dataplane/linux/runner.ts';
import { buildStatus } from '../../agent/status.ts';
import type { CompiledPolicySet } from '../../crds/types.ts';
import { MANAGED_BY_LABEL } from '../../operator/cps-object.ts';
import { PolicyCompiler } from '../../operator/compile/compiler.ts';
import { explainCommand, runInspect, showCommand, statusCommand, verifyCommand, type Output } from '../../inspect/commands.ts';
import { explain, type Explanation } from '../../inspect/explain.ts';
import { testCluster } from './env.ts';
import { clusterSnapshot, converged, cpsApi, deleteCps, getCps, kube, listCps, resolvedFor, settled, World, type Kube } from './operator-fixture.ts';

let api: Kube;
let kubeconfig: string;
let preexisting: Set<string>;
const scratch = mkdtempSync(join(tmpdir(), 'fencer-inspect-'));

before(async () => {
  await testCluster().installCrds();
  api = kube();
  kubeconfig = testCluster().kubeconfigPath;
  preexisting = new Set((await listCps(api.custom)).keys());
});

// The operator here also writes CompiledPolicySets for nodes other test files left behind.
after(async () => {
  for (const [name, cps] of await listCps(api.custom)) {
    if (!preexisting.has(name) && cps.metadata.labels?.[MANAGED_BY_LABEL] === 'fencer') await deleteCps(api.custom, name);
  }
  rmSync(scratch, { recursive: true, force: true });
});

function capture(): Output & { stdout: string; stderr: string } {
  const c = { stdout: '', stderr: '', out: (t: string) => { c.stdout += t; }, err: (t: string) => { c.stderr += t; } };
  return c;
}

/** A bare network namespace, created unless create is false (ipsets and iptables state go away with it). */
function netns(name: string, create = true) {
  if (create) execFileSync('ip', ['netns', 'add', name]);
  return {
    name,
    exec: (cmd: string[]) => execFileSync('ip', ['netns', 'exec', name, ...cmd], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }),
    destroy: () => spawnSync('ip', ['netns', 'del', name], { stdio: 'ignore' }),
  };
}

/** Two nodes, two namespaces, a default deny, a pod-to-pod allow on a named port, an egress limit. */
async function smallWorld(w: World) {
  const [n1, n2] = [await w.node('n1'), await w.node('n2')];
  const app = await w.namespace('app', { team: 'app' });
  const ops = await w.namespace('ops', { team: 'ops' });
  await w.pod({ namespace: app, name: 'web', node: n1, labels: { role: 'web' }, ports: [{ name: 'http', containerPort: 8080 }, { containerPort: 9090 }] });
  await w.pod({ namespace: app, name: 'db', node: n2, labels: { role: 'db' }, ports: [{ name: 'sql', containerPort: 5432 }] });
  await w.pod({ namespace: ops, name: 'probe', node: n2, labels: { role: 'probe' }, ports: [{ containerPort: 80 }] });
  await w.policy(app, { metadata: { name: 'deny-all' }, spec: { podSelector: {}, policyTypes: ['Ingress'] } });
  await w.policy(app, {
    metadata: { name: 'db-from-web' },
    spec: { podSelector: { matchLabels: { role: 'db' } }, ingress: [{ _from: [{ podSelector: { matchLabels: { role: 'web' } } }], ports: [{ port: 'sql' }] }] },
  });
  await w.policy(app, {
    metadata: { name: 'web-from-ops' },
    spec: { podSelector: { matchLabels: { role: 'web' } }, ingress: [{ _from: [{ namespaceSelector: { matchLabels: { team: 'ops' } } }], ports: [{ protocol: 'TCP', port: 8080 }] }] },
  });
  await w.policy(app, {
    metadata: { name: 'web-egress' },
    spec: { podSelector: { matchLabels: { role: 'web' } }, policyTypes: ['Egress'], egress: [{ to: [{ podSelector: { matchLabels: { role: 'db' } } }] }] },
  });
  return { nodes: [n1, n2], pods: [`${app}/web`, `${app}/db`, `${ops}/probe`] };
}

test('explain live agrees with explain offline on the same objects, for every pod pair and port', async (t) => {
  const w = new World(t, 'insp');
  const { nodes, pods } = await smallWorld(w);
  const op = await w.operator();
  await converged(api, nodes);
  await settled(op);
  const snapshot = await clusterSnapshot(api);
  const specs = PolicyCompiler.compile(snapshot);
  let denied = 0;
  for (const from of pods) for (const to of pods) {
    const io = capture();
    const code = await runInspect(() => explainCommand({ from, to, kubeconfig, output: 'json' }, io), io);
    assert.equal(io.stderr, '');
    const live = JSON.parse(io.stdout) as Explanation;
    const offline = explain({ snapshot, specs, from, to, origin: 'manifests' });
    assert.ok(live.agrees, `${from} -> ${to}: live explain disagrees with the oracle`);
    assert.equal(code, live.allowed ? 0 : 1);
    assert.deepEqual({ ...live, nodes: [] }, JSON.parse(JSON.stringify({ ...offline, nodes: [] })), `${from} -> ${to}`);
    assert.ok(live.nodes.length >= 1);
    for (const n of live.nodes) {
      assert.equal(n.reported, false, `${n.node}: no agent runs in this test`);
      assert.equal(n.operatorCurrent, true);
    }
    if (!live.allowed) denied++;
  }
  assert.ok(denied >= 3, 'the world has denied flows');

  const [web, db, probe] = pods;
  const text = capture();
  assert.equal(await runInspect(() => explainCommand({ from: probe, to: web, port: ['9090'], kubeconfig }, text), text), 1);
  assert.match(text.stdout, new RegExp(`ingress to ${web} on ${nodes[0]}: denied by default: selected by ${web.split('/')[0]}/deny-all, ${web.split('/')[0]}/web-from-ops and no rule allows it`));
  assert.match(text.stdout, /9090\/TCP: DENIED[^]*does not match: the port is not among its ports/);
  assert.match(text.stdout, new RegExp(`enforcement:\\n  ${nodes[1]}: agent has not reported: nothing says these rules are in force there\\n  ${nodes[0]}: agent has not reported`));
  const ok = capture();
  assert.equal(await runInspect(() => explainCommand({ from: web, to: db, kubeconfig }, ok), ok), 0);
  assert.match(ok.stdout, new RegExp(`allowed by ${db.split('/')[0]}/db-from-web ingress rule 0: from pods with role=web in namespace ${db.split('/')[0]}, named port "sql"/TCP`));
  assert.match(ok.stdout, new RegExp(`egress from ${web} on ${nodes[0]}: allowed by ${web.split('/')[0]}/web-egress egress rule 0: to pods with role=db`));

  // The CLI itself, end to end.
  const cli = spawnSync(process.execPath, ['cli/main.ts', 'explain', '--from', web, '--to', db, '--kubeconfig', kubeconfig], { encoding: 'utf8' });
  assert.equal(cli.status, 0, cli.stderr);
  assert.match(cli.stdout, /verdict: allowed \(the oracle agrees\)/);
  const unknown = spawnSync(process.execPath, ['cli/main.ts', 'explain', '--from', `${web.split('/')[0]}/nope`, '--to', db, '--kubeconfig', kubeconfig], { encoding: 'utf8' });
  assert.equal(unknown.status, 2);
  assert.equal(unknown.stderr, `error: no pod ${web.split('/')[0]}/nope; pods in ${web.split('/')[0]}: db, web\n`);

  // status: neither node's agent has reported; then one agent reports the latest generation.
  const before = capture();
  assert.equal(await runInspect(() => statusCommand({ kubeconfig }, before), before), 1);
  for (const n of nodes) assert.match(before.stdout, new RegExp(`\\n${n} +- +\\d+ +no +- +agent has not reported`));
  const cps = (await getCps(api.custom, nodes[0]))!;
  const status = buildStatus(cps, { agent: 'fencer-agent@test', enforced: { generation: cps.metadata.generation!, hash: cps.spec.contentHash, at: '2025-01-01T00:00:00Z', counts: { iptablesRules: 1, ipsets: 1, ipsetEntries: 1 } } }, cps.status, '2025-01-01T00:00:01Z');
  await api.custom.replaceClusterCustomObjectStatus({ ...cpsApi, name: nodes[0], body: { ...cps, status } });
  const afterReport = capture();
  assert.equal(await runInspect(() => statusCommand({ kubeconfig, output: 'json' }, afterReport), afterReport), 1);
  const rows = JSON.parse(afterReport.stdout) as Array<{ node: string; inSync: boolean; enforced?: number; latest?: number; since?: string; problem?: string }>;
  const row = (n: string) => rows.find((r) => r.node === n)!;
  assert.deepEqual(row(nodes[0]), { node: nodes[0], inSync: true, enforced: cps.metadata.generation, latest: cps.metadata.generation, since: '2025-01-01T00:00:01Z' });
  assert.match(row(nodes[1]).problem!, /^agent has not reported/);

  const show = capture();
  assert.equal(await runInspect(() => showCommand(nodes[1], { kubeconfig }, show), show), 0);
  assert.match(show.stdout, new RegExp(`^CompiledPolicySet ${nodes[1]} `));
  assert.match(show.stdout, new RegExp(`  ${nodes[1]}: agent has not reported`));
  assert.match(show.stdout, /1 +\S+\/db-from-web +ingress\[0\] +pods with role=web in namespace \S+ +sql\/TCP/);
  const shown = capture();
  await runInspect(() => showCommand(nodes[0], { kubeconfig }, shown), shown);
  assert.match(shown.stdout, new RegExp(`${nodes[0]}: enforces generation \\d+, the latest; in sync since 2025-01-01T00:00:01Z`));
});

test('show and explain name a node whose CompiledPolicySet is missing, and a node that does not exist', async (t) => {
  const w = new World(t, 'nocps');
  const node = await w.node('n1');
  const ns = await w.namespace('a');
  await w.pod({ namespace: ns, name: 'p', node, ports: [{ containerPort: 80 }] });
  await w.pod({ namespace: ns, name: 'q', node, ports: [{ containerPort: 80 }] });
  await deleteCps(api.custom, node); // no operator runs in this test
  const show = capture();
  assert.equal(await runInspect(() => showCommand(node, { kubeconfig }, show), show), 2);
  assert.match(show.stderr, new RegExp(`^error: no CompiledPolicySet for node ${node}: the operator has not compiled it yet`));
  const ex = capture();
  assert.equal(await runInspect(() => explainCommand({ from: `${ns}/p`, to: `${ns}/q`, kubeconfig }, ex), ex), 2);
  assert.match(ex.stderr, new RegExp(`^error: no CompiledPolicySet for node ${node} \\(the source ${ns}/p runs there\\): the operator has not compiled it yet`));
  const nowhere = capture();
  assert.equal(await runInspect(() => showCommand('no-such-node', { kubeconfig }, nowhere), nowhere), 2);
  assert.match(nowhere.stderr, new RegExp(`^error: no node no-such-node; nodes: .*${node}`));
  const status = capture();
  assert.equal(await runInspect(() => statusCommand({ kubeconfig }, status), status), 1);
  assert.match(status.stdout, new RegExp(`\\n${node} .*no CompiledPolicySet: the operator has not compiled this node`));
});

test('verify: a network namespace holding the spec matches; a deleted rule and an extra member are named; --sandbox finds the netns', async (t) => {
  const w = new World(t, 'verify');
  const { nodes } = await smallWorld(w);
  const op = await w.operator();
  await converged(api, nodes);
  await settled(op);
  const node = nodes[1]; // db: ingress rules with a peer set and a named port set
  const raw = (await getCps(api.custom, node)) as CompiledPolicySet;
  const whole = await resolvedFor(api.custom, raw.spec); // what the node's agent enforces: its spec and the AddressSets it names
  assert.ok(typeof whole !== 'string', String(whole));
  const cps = { ...raw, spec: whole };
  const ns = netns(`fencer-vfy-${randomBytes(3).toString('hex')}`, false);
  // The --sandbox path: a state file naming a prefix; the node's netns is <prefix>-<node>.
  const prefix = 'fvx';
  const sandboxNetns = `${prefix}-${node}`;
  try {
    netns(ns.name);
    netns(sandboxNetns);
    for (const netns of [ns.name, sandboxNetns]) await new LinuxDataplane({ runner: new ExecRunner(['ip', 'netns', 'exec', netns]), hookPosition: 'first' }).apply(cps.spec);
    const clean = capture();
    assert.equal(await runInspect(() => verifyCommand(node, { netns: ns.name, kubeconfig }, clean), clean), 0, clean.stdout + clean.stderr);
    assert.match(clean.stdout, new RegExp(`^verify ${node} on network namespace ${ns.name} against its CompiledPolicySet \\(generation \\d+, hash [0-9a-f]{12}\\)\\nthe kernel matches the spec`));

    const dp = new LinuxDataplane({ runner: new ExecRunner(['ip', 'netns', 'exec', ns.name]) });
    const tools = await dp.iptables();
    const target = cps.spec.targets.find((x) => x.ingress?.rules.some((r) => r.policy.endsWith('/db-from-web')))!;
    const chain = `FENCER-I-${target.podSet.slice(2)}`;
    const rules = ns.exec([tools.save, '-t', 'filter']).split('\n').filter((l) => l.startsWith(`-A ${chain} `));
    const victim = rules.findIndex((l) => l.includes('--match-set'));
    assert.ok(victim >= 0, rules.join('\n'));
    ns.exec([tools.iptables, '-w', '-D', chain, String(victim + 1)]);
    const peerSet = cps.spec.ipSets.find((s) => s.origin.startsWith('pods with role=web'))!;
    ns.exec(['ipset', 'add', `FENCER-${peerSet.name}`, '10.9.9.9']);

    const drifted = capture();
    assert.equal(await runInspect(() => verifyCommand(node, { netns: ns.name, kubeconfig }, drifted), drifted), 1, drifted.stdout + drifted.stderr);
    assert.match(drifted.stdout, /the kernel differs from the spec in 2 ways:/);
    assert.match(drifted.stdout, new RegExp(`  - set FENCER-${peerSet.name} \\(pods with role=web in namespace \\S+\\): 1 member not in the spec: 10\\.9\\.9\\.9`));
    assert.match(drifted.stdout, new RegExp(`  - chain ${chain}: rule missing: \\S+/db-from-web ingress rule 0: from pods with role=web in namespace \\S+, named port "sql"/TCP \\(for \\S+/db\\)`));

    // The CLI, through --sandbox: exit 0 on the intact copy, exit 1 once a member is removed.
    const state = join(scratch, 'sandbox.json');
    writeFileSync(state, JSON.stringify({ pid: process.pid, prefix, kubeconfig, kubectl: 'kubectl', pods: [] }));
    const verify = () => spawnSync(process.execPath, ['cli/main.ts', 'verify', node, '--sandbox'], { encoding: 'utf8', env: { ...process.env, FENCER_SANDBOX_STATE: state } });
    const intact = verify();
    assert.equal(intact.status, 0, intact.stdout + intact.stderr);
    assert.match(intact.stdout, new RegExp(`on network namespace ${sandboxNetns} `));
    const member = peerSet.members[0];
    execFileSync('ip', ['netns', 'exec', sandboxNetns, 'ipset', 'del', `FENCER-${peerSet.name}`, member]);
    const missing = verify();
    assert.equal(missing.status, 1, missing.stdout + missing.stderr);
    assert.match(missing.stdout, new RegExp(`set FENCER-${peerSet.name} .*: 1 member missing: ${member.replace(/\./g, '\\.')}`));
  } finally {
    ns.destroy();
    netns(sandboxNetns, false).destroy();
  }
});

test('a user without RBAC permissions is told which reads are forbidden', async () => {
  const kc = await testCluster().kubeConfigFor('default', `fencer-inspect-norbac`);
  const path = join(scratch, 'norbac.kubeconfig');
  writeFileSync(path, kc.exportConfig());
  const io = capture();
  assert.equal(await runInspect(() => statusCommand({ kubeconfig: path }, io), io), 2);
  assert.match(io.stderr, /^error: forbidden to read (nodes|compiledpolicysets\.fencer\.dev) \(403\): .*; the inspect commands need get\/list on pods, namespaces, nodes, networkpolicies, compiledpolicysets\.fencer\.dev and addresssets\.fencer\.dev\n$/);
});
