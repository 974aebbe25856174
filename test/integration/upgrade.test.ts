// The rolling upgrade from the previous release (FENCER_UPGRADE_FROM, default f79a8d2: every set
// inline in each node's CompiledPolicySet) to this tree (sets used cluster-wide in AddressSet shards,
// named by spec.sharedSets), with real packets. The release is materialized from git into a temp
// directory (test/faults/release.ts) and its `fencer operator` / `fencer agent --netns` processes
// run against the test apiserver, side by side with this tree's, on three simulated nodes (network
// namespaces) whose policies use selectors across nodes, an ipBlock with except and named ports
// (ingress and egress), so shared sets matter on every node.
//  1. Agents first: the release's CRD and processes; the new CRDs applied while they run; agents
//     replaced one by one (SIGTERM or SIGKILL, then this tree's agent on the same netns), a policy
//     change after two of three; then the operator: this tree's replica starts as a standby (writes
//     nothing), the old one stops, the new one takes the Lease and rewrites every node in the new
//     format, every set written before the objects naming it.
//  2. Then the operators take turns through the Lease (the release again, a rollback, and this tree
//     once more): a pod leaves a shared set while the release leads, so the AddressSets written before
//     are stale, and this tree's operator takes over while the apiserver holds back AddressSet writes
//     for a while (test/faults/admission-hold.ts): it must not name a stale set meanwhile.
//  3. Operator first: the new operator takes the Lease from the old one while the old agents run;
//     they reject the new-format objects (Degraded=True, reason Invalid) and keep their last good state
//     in the kernel, through a policy change too, until each is replaced.
// Throughout: a continuous probe loop (TCP and UDP, every flow every 50 ms) over pairs whose answer is
// the same under every state the run goes through must never see one wrong; pairs a change flips
// are counted, not judged. A change of format alone (same sets and rules) must change no kernel. At
// the end everything is this tree's and converged: new-format objects, AddressSets, kernels holding
// exactly the new spec (the old agents' chains and sets taken over, nothing left over).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoordinationV1Api, type KubeConfig, type V1NetworkPolicy } from '@kubernetes/client-node';
import { ASET_KIND, ASET_PLURAL } from '../../crds/address-set.ts';
import { nodeLabel } from '../../crds/consumers.ts';
import { CPS_GROUP, CPS_VERSION, type CompiledPolicySet, type CompiledPolicySetSpec } from '../../crds/types.ts';
import { toClientPolicy, type ClusterSnapshot } from '../../model/cluster.ts';
import { kubelet, type Kubelet } from '../../localcluster/kubelet.ts';
import { Topology, type PodHandle } from '../../netns/topology.ts';
import { PolicyCompiler } from '../../operator/compile/compiler.ts';
import { oracleAllows } from '../../oracle/oracle.ts';
import { resetCluster } from '../../sandbox/reset.ts';
import { holdWrites, type WriteHold } from '../faults/admission-hold.ts';
import { applyPolicy, expectedSpecs, getCps, lag, sleep, snapshot, waitFor } from '../faults/harness.ts';
import { kernelProblems, kernelSnapshot, type KernelSnapshot } from '../faults/kernel.ts';
import { ContinuousLoop, type ContinuousFlow, type ContinuousStats } from '../faults/continuous-loop.ts';
import { metricValue, spawnAgent, spawnOperator, type FencerProcess } from '../faults/processes.ts';
import { materializeRelease, type Release } from '../faults/release.ts';
import { cpsFormat, deleteAddressSetsOf, deleteCps, listAddressSets, recordWrites, resolvedSpec, shardsFor, sortedMembers, staleNamings } from '../helpers/address-sets.ts';
import { testCluster } from './env.ts';

const FROM = process.env.FENCER_UPGRADE_FROM ?? 'f79a8d2';
const run = randomBytes(2).toString('hex');
const NSA = 'upg-a';
const NSB = 'upg-b';
const NODES = [{ name: 'un1', podCIDR: '10.244.1.0/24' }, { name: 'un2', podCIDR: '10.244.2.0/24' }, { name: 'un3', podCIDR: '10.244.3.0/24' }];
const nodeNames = NODES.map((n) => n.name);
const LEASE = `fencer-upgrade-${run}`;
const LEASE_NS = 'kube-system';
/** Time each intermediate state is left standing under the probe loop. */
const DWELL_MS = Number(process.env.FENCER_UPGRADE_DWELL_MS ?? 800);
/** The probe loop's period per flow. */
const EVERY_MS = 50;
/** How long AddressSet writes are held back when the new operator takes over the second time. */
const HOLD_MS = 2500;
/** A shard the AddressSet schema accepts (for the hold's dry-run check). */
const PROBE_SHARD = { set: 'p-0000000000000000', kind: 'ip', origin: 'probe', epoch: 0, shard: 0, shards: 1, size: 0, nodes: 0, members: [] };

type Proto = 'TCP' | 'UDP';
interface PodDef { namespace: string; name: string; node: string; ip: string; labels: Record<string, string>; ports: Array<{ name?: string; port: number; protocol: Proto }> }
const PODS: PodDef[] = [
  { namespace: NSA, name: 'web', node: 'un1', ip: '10.244.1.10', labels: { app: 'web' }, ports: [{ port: 80, protocol: 'TCP' }, { port: 81, protocol: 'TCP' }, { port: 80, protocol: 'UDP' }] },
  { namespace: NSA, name: 'client', node: 'un2', ip: '10.244.2.10', labels: { role: 'client' }, ports: [{ port: 80, protocol: 'TCP' }] },
  { namespace: NSB, name: 'api', node: 'un2', ip: '10.244.2.11', labels: { app: 'api' }, ports: [{ name: 'http', port: 8080, protocol: 'TCP' }, { port: 81, protocol: 'TCP' }, { port: 53, protocol: 'UDP' }] },
  { namespace: NSB, name: 'scanner', node: 'un3', ip: '10.244.3.10', labels: { role: 'scanner' }, ports: [{ port: 80, protocol: 'TCP' }] },
  { namespace: NSA, name: 'client2', node: 'un3', ip: '10.244.3.11', labels: { role: 'client' }, ports: [{ port: 80, protocol: 'TCP' }] },
  { namespace: NSB, name: 'probe', node: 'un3', ip: '10.244.3.12', labels: { role: 'probe' }, ports: [{ port: 80, protocol: 'TCP' }] },
  // A client that stops being one while the old operator leads again (operators taking turns).
  { namespace: NSA, name: 'temp', node: 'un3', ip: '10.244.3.13', labels: { role: 'client' }, ports: [{ port: 80, protocol: 'TCP' }] },
];

/**
 * web: from clients of its namespace (pods on two other nodes: a shared selector set) on TCP and UDP 80, from an
 * ipBlock with an except on 81. The change mid-upgrade adds scanners of team=b on 80 and widens the
 * except (probe, 10.244.3.12, loses 81): one flow opens, one closes.
 */
function webPolicy(changed: boolean): V1NetworkPolicy {
  return {
    apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { namespace: NSA, name: 'web' },
    spec: {
      podSelector: { matchLabels: { app: 'web' } },
      policyTypes: ['Ingress'],
      ingress: [
        { from: [{ podSelector: { matchLabels: { role: 'client' } } }, ...(changed ? [{ namespaceSelector: { matchLabels: { team: 'b' } }, podSelector: { matchLabels: { role: 'scanner' } } }] : [])], ports: [{ protocol: 'TCP', port: 80 }, { protocol: 'UDP', port: 80 }] },
        { from: [{ ipBlock: { cidr: '10.244.3.0/24', except: [changed ? '10.244.3.0/28' : '10.244.3.10/32'] } }], ports: [{ protocol: 'TCP', port: 81 }] },
      ] as never,
    },
  };
}

/** api: from every pod of team=a namespaces on its named port (resolved on the local pods). */
const apiPolicy: V1NetworkPolicy = {
  apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { namespace: NSB, name: 'api' },
  spec: {
    podSelector: { matchLabels: { app: 'api' } },
    policyTypes: ['Ingress'],
    ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: 'a' } } }], ports: [{ protocol: 'TCP', port: 'http' as never }] }] as never,
  },
};

/** clients (on two nodes): egress only to the api's named port (resolved on remote pods: a shared ipPort set) and to web's TCP and UDP 80. */
const clientPolicy: V1NetworkPolicy = {
  apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { namespace: NSA, name: 'client-egress' },
  spec: {
    podSelector: { matchLabels: { role: 'client' } },
    policyTypes: ['Egress'],
    egress: [
      { to: [{ namespaceSelector: { matchLabels: { team: 'b' } }, podSelector: { matchLabels: { app: 'api' } } }], ports: [{ protocol: 'TCP', port: 'http' as never }] },
      { to: [{ podSelector: { matchLabels: { app: 'web' } } }], ports: [{ protocol: 'TCP', port: 80 }, { protocol: 'UDP', port: 80 }] },
    ],
  },
};

/** [from, to, port, protocol]: same-node and cross-node, open and closed, through every kind of set. */
const PAIRS: Array<[string, string, number, Proto?]> = [
  ['client', 'web', 80], ['client2', 'web', 80], ['scanner', 'web', 80], ['probe', 'web', 81], ['scanner', 'web', 81],
  ['probe', 'web', 80], ['client', 'api', 8080], ['client2', 'api', 8080], ['probe', 'api', 8080], ['client', 'api', 81],
  ['web', 'client', 80], ['client', 'scanner', 80], ['scanner', 'client2', 80], ['client2', 'probe', 80], ['web', 'api', 8080],
  ['probe', 'scanner', 80], ['client', 'web', 80, 'UDP'], ['probe', 'web', 80, 'UDP'], ['web', 'api', 53, 'UDP'], ['temp', 'web', 80],
];

type Which = 'old' | 'new';
interface Running { proc: FencerProcess; which: Which; name: string }
interface OldCompilerModule { PolicyCompiler: { compile(snapshot: ClusterSnapshot): Map<string, CompiledPolicySetSpec> } }

let release: Release;
let oldCompiler: OldCompilerModule['PolicyCompiler'];
let topology: Topology | undefined;
let kc: KubeConfig;
let k: Kubelet;
let logs: string;
const handles = new Map<string, PodHandle>();
const holds: WriteHold[] = [];
const agents = new Map<string, Running>();
const operators: Running[] = [];
let spawned = 0;

const netns = (node: string) => topology!.nodeNetns(node);

async function startAgent(node: string, which: Which): Promise<Running> {
  const o = { node, netns: netns(node), kubeconfig: testCluster().kubeconfigPath, logFile: join(logs, `agent-${node}-${which}-${++spawned}.log`) };
  const proc = which === 'old' ? await release.spawnAgent(o) : await spawnAgent(o);
  const r = { proc, which, name: `${which} agent on ${node}` };
  agents.set(node, r);
  return r;
}

async function startOperator(which: Which, identity: string): Promise<Running> {
  const o = { kubeconfig: testCluster().kubeconfigPath, identity, namespace: LEASE_NS, leaseName: LEASE, logFile: join(logs, `operator-${identity}-${++spawned}.log`) };
  const proc = which === 'old' ? await release.spawnOperator(o) : await spawnOperator(o);
  const r = { proc, which, name: `${which} operator ${identity}` };
  operators.push(r);
  return r;
}

async function stopAll(): Promise<void> {
  await Promise.all([...agents.values(), ...operators].map((r) => r.proc.kill('SIGKILL')));
  agents.clear();
  operators.length = 0;
}

function tail(r: Running | undefined, lines = 12): string {
  return r ? `${r.name}:\n${r.proc.log().trim().split('\n').slice(-lines).join('\n')}` : '';
}

const leading = async (r: Running) => metricValue(await r.proc.metrics('/metrics'), 'fencer_operator_leader') === 1;

/** Applies since start of one agent process, by result. */
async function applies(r: Running): Promise<Record<string, number>> {
  const text = await r.proc.metrics('/node-metrics');
  return Object.fromEntries(['noop', 'members', 'rules', 'invalid', 'failed'].map((result) => [result, metricValue(text, 'fencer_agent_applies_total', { result })]));
}

/** Every agent's apply counts now, by node. */
async function appliesByNode(): Promise<Map<string, Record<string, number>>> {
  return new Map(await Promise.all(nodeNames.map(async (n) => [n, await applies(agents.get(n)!)] as const)));
}

/**
 * The applies that changed a kernel (members or rules) since `before`, by node: a change of format
 * alone (the same sets and rules, inline or shared) must change nothing.
 */
async function kernelChangesSince(before: Map<string, Record<string, number>>): Promise<string[]> {
  const now = await appliesByNode();
  return nodeNames.flatMap((n) => {
    const d = (r: string) => now.get(n)![r] - (before.get(n)![r] ?? 0);
    return d('members') + d('rules') + d('failed') + d('invalid') > 0 ? [`${n}: ${d('members')} member, ${d('rules')} rule, ${d('failed')} failed, ${d('invalid')} invalid applies`] : [];
  });
}

/** Why the nodes do not yet enforce the previous release's compile in its format, or undefined. */
async function oldLag(): Promise<string | undefined> {
  const want = oldCompiler.compile(await snapshot(kc));
  for (const node of nodeNames) {
    const spec = want.get(node);
    const cps = await getCps(kc, node);
    if (!spec) return `${node}: not compiled by the release`;
    if (!cps) return `${node}: no CompiledPolicySet`;
    if (cps.spec.sharedSets !== undefined) return `${node}: the object names shared sets`;
    if (cps.spec.contentHash !== spec.contentHash) return `${node}: spec ${cps.spec.contentHash.slice(7, 15)}, the release compiles ${spec.contentHash.slice(7, 15)}`;
    if (!enforcesLatest(cps)) return `${node}: agent enforces generation ${cps.status?.observedGeneration} of ${cps.metadata.generation}`;
  }
  return undefined;
}

/** Why the nodes do not yet enforce this tree's compile in the new format (AddressSets included), or undefined. */
async function newLag(): Promise<string | undefined> {
  const why = await lag(kc, nodeNames);
  if (why) return why;
  const full = await expectedSpecs(kc);
  for (const node of nodeNames) {
    const cps = (await getCps(kc, node))!;
    if (cpsFormat(cps) !== 'shared') return `${node}: the object carries every set inline`;
    const resolved = await resolvedSpec(kc, cps);
    if (typeof resolved === 'string') return resolved;
    try {
      assert.deepEqual(resolved, sortedMembers(full.get(node)!));
    } catch (e) {
      return `${node}: the object with its AddressSets differs from the compile: ${(e as Error).message.slice(0, 400)}`;
    }
  }
  return undefined;
}

function enforcesLatest(cps: CompiledPolicySet | undefined): boolean {
  return !!cps && cps.status?.appliedHash === cps.spec.contentHash && cps.status?.observedGeneration === cps.metadata.generation;
}

async function waitLag(what: string, lagOf: () => Promise<string | undefined>, timeoutMs = 30_000): Promise<number> {
  const started = performance.now();
  let why: string | undefined;
  await waitFor(what, async () => (why = await lagOf()) === undefined, timeoutMs, 50)
    .catch((e: Error) => assert.fail(`${e.message} (last: ${why})\n${[...agents.values(), ...operators].map((r) => tail(r, 6)).join('\n')}`));
  return performance.now() - started;
}

/** What each pair must be: the oracle on the cluster before the change and after it (the same for both releases). */
function expectations(before: ClusterSnapshot): Array<{ name: string; from: PodHandle; to: PodHandle; protocol: Proto; port: number; before: boolean; after: boolean }> {
  const changed = toClientPolicy(webPolicy(true));
  const afterSnap: ClusterSnapshot = { ...before, policies: before.policies.map((p) => (p.metadata?.namespace === NSA && p.metadata?.name === 'web' ? { ...p, spec: changed.spec } : p)) };
  return PAIRS.map(([from, to, port, protocol = 'TCP']) => {
    const src = PODS.find((p) => p.name === from)!;
    const dst = PODS.find((p) => p.name === to)!;
    // A port the destination does not serve is refused whatever the policies say.
    const serves = dst.ports.some((p) => p.port === port && p.protocol === protocol);
    const allows = (snap: ClusterSnapshot) => serves && oracleAllows(snap, { srcIP: src.ip, dstIP: dst.ip, protocol, port });
    const name = `${from} → ${to}:${port}${protocol === 'UDP' ? '/udp' : ''}`;
    return { name, from: handles.get(from)!, to: handles.get(to)!, protocol, port, before: allows(before), after: allows(afterSnap) };
  });
}

function loopFlows(table: ReturnType<typeof expectations>): ContinuousFlow[] {
  return table.map((f) => ({ name: f.name, from: f.from, to: { ip: f.to.ip }, protocol: f.protocol, port: f.port, expect: f.before === f.after ? (f.before ? 'open' : 'closed') : 'any' }));
}

/** Every pair probed twice (one-shot probes), judged by the oracle on the cluster as it is now: everything converged. */
async function finalRound(): Promise<string[]> {
  const table = expectations(await snapshot(kc)).map((f) => ({ ...f, after: f.before }));
  const wrong: string[] = [];
  for (let i = 0; i < 2; i++) {
    await Promise.all(table.map(async (f) => {
      const [open] = await topology!.probe(f.from, [{ ip: f.to.ip, protocol: f.protocol, port: f.port }], 800);
      if (open !== f.after) wrong.push(`${f.name} seen ${open ? 'open' : 'closed'}`);
    }));
  }
  return wrong;
}

async function probeOnce(from: string, to: string, port: number): Promise<boolean> {
  const [open] = await topology!.probe(handles.get(from)!, [{ ip: handles.get(to)!.ip, protocol: 'TCP', port }], 500);
  return open;
}

/**
 * The previous release as a fresh install: no Fencer state in the kernels (its own `agent --cleanup`),
 * no CompiledPolicySets or AddressSets of these nodes, the policies before the change; its operator
 * leading, its agents enforcing what it compiles. Returns each node's CPS as enforced.
 */
async function installPrevious(t: { diagnostic(s: string): void }): Promise<Map<string, CompiledPolicySet>> {
  const started = performance.now();
  await Promise.all(nodeNames.map(async (node) => {
    const r = await release.run(['agent', '--cleanup', '--netns', netns(node)]);
    assert.equal(r.code, 0, `the release's agent --cleanup in ${node}: ${r.output}`);
  }));
  for (const node of nodeNames) await deleteCps(kc, node);
  await deleteAddressSetsOf(kc, nodeNames);
  await kc.makeApiClient(CoordinationV1Api).deleteNamespacedLease({ namespace: LEASE_NS, name: LEASE }).catch(() => undefined);
  for (const p of [webPolicy(false), apiPolicy, clientPolicy]) await applyPolicy(kc, p);
  await k.labelPod(NSA, 'temp', { role: 'client' });
  const op = await startOperator('old', `old-${run}`);
  await waitFor('the old operator to lead', () => leading(op), 30_000, 100).catch((e: Error) => assert.fail(`${e.message}\n${tail(op)}`));
  for (const node of nodeNames) await startAgent(node, 'old');
  await waitLag('the previous release to enforce its compile on every node', oldLag);
  const enforced = new Map<string, CompiledPolicySet>();
  for (const node of nodeNames) enforced.set(node, (await getCps(kc, node))!);
  // The premise of "the same answer under the old and the new state": both releases compile the
  // cluster into the same sets and rules; only where the sets live differs.
  const [oldFull, newFull] = [oldCompiler.compile(await snapshot(kc)), await expectedSpecs(kc)];
  for (const node of nodeNames) {
    const strip = (s: CompiledPolicySetSpec) => ({ podCIDRs: s.podCIDRs, policies: s.policies, targets: s.targets, diagnostics: s.diagnostics, ipSets: sortedMembers(s).ipSets.map(({ name, kind, members }) => ({ name, kind, members })) });
    assert.deepEqual(strip(newFull.get(node)!), strip(oldFull.get(node)!), `${node}: this tree and the release compile different rules or sets`);
    assert.equal(cpsFormat(enforced.get(node)!), 'inline');
  }
  assert.equal((await Promise.all(nodeNames.map((n) => shardsFor(kc, n)))).flat().length, 0, 'no AddressSet for these nodes before the upgrade');
  t.diagnostic(`previous release ${release.commit.slice(0, 7)} installed and enforcing in ${Math.round(performance.now() - started)} ms (dependencies ${release.dependencies})`);
  return enforced;
}

/** Replaces a node's agent: the old process stops (or is killed), this tree's starts on the same netns and finishes its first sync. */
async function replaceAgent(node: string, how: 'SIGTERM' | 'SIGKILL'): Promise<{ code: number; firstSyncMs: number; applies: Record<string, number>; next: Running }> {
  const old = agents.get(node)!;
  assert.equal(old.which, 'old');
  const code = how === 'SIGTERM' ? await old.proc.stop() : await old.proc.kill('SIGKILL');
  const started = performance.now();
  const next = await startAgent(node, 'new');
  let counts: Record<string, number> = {};
  await waitFor(`the new agent on ${node} to finish its first sync`, async () => {
    counts = await applies(next);
    return Object.values(counts).some((n) => n > 0) && enforcesLatest(await getCps(kc, node));
  }, 20_000, 50).catch((e: Error) => assert.fail(`${e.message}\n${tail(next)}`));
  return { code, firstSyncMs: performance.now() - started, applies: counts, next };
}

/**
 * Starts an operator of release `to` as a standby next to the leader of the other release (a
 * Deployment's surge, or a rollback), checks it writes nothing while it waits, stops the leader
 * (SIGTERM: it releases the Lease); resolves when the standby leads.
 */
async function handOverOperator(t: { diagnostic(s: string): void }, to: Which): Promise<{ takeoverMs: number; standbyWrote: string[]; exit: number }> {
  const from = operators.find((o) => o.which !== to && o.proc.alive())!;
  assert.ok(from, `a ${to === 'new' ? 'old' : 'new'} operator leads`);
  const shardVersions = async () => new Map((await Promise.all(nodeNames.map((n) => listAddressSets(kc, nodeLabel(n))))).flat().map((o) => [o.metadata.name, o.metadata.resourceVersion]));
  const formats = async () => Promise.all(nodeNames.map(async (n) => cpsFormat((await getCps(kc, n))!)));
  const [shardsBefore, formatsBefore] = [await shardVersions(), await formats()];
  const next = await startOperator(to, `${to}-${run}-${spawned}`);
  await waitFor(`the ${to} operator to be ready`, async () => (await fetch(`http://127.0.0.1:${next.proc.metricsPort}/readyz`)).status === 200, 30_000, 100)
    .catch((e: Error) => assert.fail(`${e.message}\n${tail(next)}`));
  await sleep(DWELL_MS);
  const standbyWrote: string[] = [];
  if (await leading(next)) standbyWrote.push(`the ${to} replica leads while the other one holds the Lease`);
  const formatsNow = await formats();
  nodeNames.forEach((n, i) => {
    if (formatsNow[i] !== formatsBefore[i]) standbyWrote.push(`${n}: rewritten (${formatsBefore[i]} → ${formatsNow[i]}) while the ${from.which} operator leads`);
  });
  const shardsNow = await shardVersions();
  const touched = [...new Set([...shardsBefore.keys(), ...shardsNow.keys()])].filter((k) => shardsBefore.get(k) !== shardsNow.get(k));
  if (touched.length) standbyWrote.push(`AddressSet shards written while the ${from.which} operator leads: ${touched.join(', ')}`);
  const stoppedAt = performance.now();
  const exit = await from.proc.stop();
  await waitFor(`the ${to} operator to take the Lease`, () => leading(next), 20_000, 50).catch((e: Error) => assert.fail(`${e.message}\n${tail(next)}`));
  const takeoverMs = performance.now() - stoppedAt;
  t.diagnostic(`operator: ${from.which} replica stopped (exit ${exit}), ${to} replica led ${Math.round(takeoverMs)} ms later`);
  return { takeoverMs, standbyWrote, exit };
}

/** What a recorder saw of objects naming sets before their shards were whole and current (the compile of the cluster now). */
async function namedEarly(recorder: Awaited<ReturnType<typeof recordWrites>>): Promise<string[]> {
  const events = await recorder.stop();
  const compiled = PolicyCompiler.loaded(await snapshot(kc));
  return staleNamings(events, nodeNames, (id) => compiled.sharedSet(id)?.members);
}

/** Every node's kernel holds exactly what its new-format object and AddressSets say, nothing else. */
async function finalChecks(): Promise<{ problems: string[]; shards: number; shared: number }> {
  const problems: string[] = [];
  let shared = 0;
  for (const node of nodeNames) {
    const cps = (await getCps(kc, node))!;
    shared += cps.spec.sharedSets?.length ?? 0;
    const inline = new Set(cps.spec.ipSets.map((s) => s.name));
    for (const ref of cps.spec.sharedSets ?? []) if (inline.has(ref.name)) problems.push(`${node}: ${ref.name} both inline and shared`);
    const resolved = await resolvedSpec(kc, cps);
    if (typeof resolved === 'string') {
      problems.push(resolved);
      continue;
    }
    problems.push(...(await kernelProblems(netns(node), resolved, 3000)).map((p) => `${node}: ${p}`));
    const agent = agents.get(node);
    if (agent?.which !== 'new' || !agent.proc.alive()) problems.push(`${node}: not run by this tree's agent`);
    const degraded = cps.status?.conditions?.find((c) => c.type === 'Degraded');
    if (degraded?.status !== 'False') problems.push(`${node}: Degraded ${JSON.stringify(degraded)}`);
  }
  const shards = (await Promise.all(nodeNames.map((n) => shardsFor(kc, n)))).flat();
  return { problems, shards: new Set(shards.map((s) => `${s.set}/${s.epoch}/${s.shard}`)).size, shared };
}

function describe(stats: ContinuousStats, flows: number): string {
  return `${stats.sent} probes over ${(stats.ms / 1000).toFixed(1)} s (${flows} flows, one attempt each every ${EVERY_MS} ms), ${stats.failed} wrong (${stats.opened} opened, ${stats.closed} closed); changing flows seen ${JSON.stringify(stats.seen)}`;
}

function assertLoop(stats: ContinuousStats, flows: ContinuousFlow[]): void {
  const when = (at: number) => `${new Date(at).toISOString().slice(11, 23)}`;
  const failures = stats.failures.map((f) => `${when(f.at)} ${f.flow} seen ${f.observed ? 'open' : 'closed'}`).join('\n');
  assert.equal(stats.opened, 0, `a flow both the old and the new state deny was seen open:\n${failures}`);
  assert.equal(stats.closed, 0, `a flow both the old and the new state allow was seen closed:\n${failures}`);
  // Every flow probed all along (a prober that died would leave a flow unwatched).
  const least = Math.min(...flows.map((f) => stats.perFlow[f.name] ?? 0));
  assert.ok(least >= (stats.ms / EVERY_MS) * 0.5, `every flow probed throughout: the least probed got ${least} attempts in ${stats.ms} ms`);
}

before(async () => {
  const cluster = testCluster();
  kc = cluster.kubeConfig();
  k = kubelet(kc);
  logs = mkdtempSync(join(tmpdir(), 'fencer-upgrade-'));
  release = materializeRelease(FROM);
  oldCompiler = (await release.import<OldCompilerModule>('operator/compile/compiler.ts')).PolicyCompiler;
  await cluster.installCrds();
  await resetCluster(kc, new Map([[NSA, { team: 'a' }], [NSB, { team: 'b' }]]));
  topology = await Topology.create({ prefix: 'upg', nodes: NODES });
  for (const n of NODES) await k.createNode(n.name, n.podCIDR);
  for (const p of PODS) {
    const ports = (protocol: Proto) => p.ports.filter((x) => x.protocol === protocol).map((x) => x.port);
    handles.set(p.name, await topology.addPod(p.node, { name: `${p.namespace}/${p.name}`, ip: p.ip, tcp: ports('TCP'), udp: ports('UDP') }));
    await k.createPod({ namespace: p.namespace, name: p.name, node: p.node, labels: p.labels, ip: p.ip, ports: p.ports.map((x) => ({ name: x.name, containerPort: x.port, protocol: x.protocol })) });
  }
});

after(async () => {
  for (const h of holds) await h.release().catch(() => undefined);
  await stopAll();
  await topology?.destroy();
  await kc.makeApiClient(CoordinationV1Api).deleteNamespacedLease({ namespace: LEASE_NS, name: LEASE }).catch(() => undefined);
  for (const ns of [NSA, NSB]) await k?.deleteNamespace(ns).catch(() => undefined);
  for (const n of nodeNames) {
    await k?.deleteNode(n).catch(() => undefined);
    await deleteCps(kc, n).catch(() => undefined);
  }
  await deleteAddressSetsOf(kc, nodeNames).catch(() => undefined);
  // The CRDs of this tree, whatever the test did to them (other files of the run need them).
  await testCluster().installCrds();
  await release?.remove();
  if (process.env.FENCER_KEEP_LOGS) console.error(`upgrade logs kept in ${logs}`);
  else if (logs) rmSync(logs, { recursive: true, force: true });
});

/** Set when the agents-first test ends with everything of this tree running and converged: the turns test goes on from there. */
let upgraded = false;

test('agents first, then the operator: every node stays enforced, the new CRDs applied under the old release, the old state taken over unchanged', async (t) => {
  const cluster = testCluster();
  const runStarted = performance.now();
  let loop: ContinuousLoop | undefined;
  try {
    // The previous release as it was installed: its own CompiledPolicySet CRD, no AddressSet CRD.
    await cluster.kubectl(['delete', 'crd', 'addresssets.fencer.dev', '--ignore-not-found', '--wait=true']);
    const oldCrd = await cluster.kubectl(['apply', '-f', join(release.root, 'crds/compiledpolicyset.yaml')]);
    assert.equal(oldCrd.exitCode, 0, oldCrd.stderr);
    await installPrevious(t);
    const table = expectations(await snapshot(kc));
    const flows = loopFlows(table);
    assert.ok(flows.filter((f) => f.expect === 'open').length >= 5 && flows.filter((f) => f.expect === 'closed').length >= 5, 'open and closed flows under test');
    assert.deepEqual(flows.filter((f) => f.expect === 'any').map((f) => f.name), ['scanner → web:80', 'probe → web:81'], 'the change flips exactly these');
    loop = new ContinuousLoop(flows, { everyMs: EVERY_MS }).start();
    const steps: string[] = [];
    await sleep(DWELL_MS);
    // Step 0: the new CRDs while the old release runs (helm does not upgrade CRDs: kubectl apply first).
    await cluster.installCrds();
    await sleep(DWELL_MS);
    assert.equal(await oldLag(), undefined, 'the old release is unaffected by the new CRDs');
    steps.push('new CRDs applied under the old release: no change');

    // Agents one by one, under the old operator: each new agent finds the kernel exactly as the old one left it.
    const takeover: string[] = [];
    const rollAgent = async (node: string, how: 'SIGTERM' | 'SIGKILL') => {
      const before: KernelSnapshot = await kernelSnapshot(netns(node));
      const r = await replaceAgent(node, how);
      const afterSnap = await kernelSnapshot(netns(node));
      const unchanged = afterSnap.rules === before.rules && afterSnap.sets === before.sets;
      takeover.push(`${node}: old agent ${how} (exit ${r.code}), new agent's first sync ${Math.round(r.firstSyncMs)} ms (${JSON.stringify(r.applies)}), kernel ${unchanged ? 'unchanged' : 'CHANGED'}`);
      assert.ok(unchanged, `${node}: the new agent changed the kernel state the old one left for the same object\nbefore:\n${before.rules}\n${before.sets}\nafter:\n${afterSnap.rules}\n${afterSnap.sets}`);
      assert.equal(r.applies.invalid + r.applies.failed, 0, `${node}: the new agent rejected or failed on the old-format object`);
      await sleep(DWELL_MS);
    };
    await rollAgent('un1', 'SIGTERM');
    await rollAgent('un2', 'SIGKILL');
    // The policy change with two new agents and one old, all on old-format objects.
    await applyPolicy(kc, webPolicy(true));
    const changeMs = await waitLag('the change to be enforced by the mixed agents', oldLag);
    steps.push(`policy change with agents new/new/old under the old operator enforced in ${Math.round(changeMs)} ms`);
    await sleep(DWELL_MS);
    await rollAgent('un3', 'SIGTERM');
    steps.push(...takeover);
    assert.equal(await oldLag(), undefined, 'new agents enforce the old-format objects');

    // The operator.
    const applied = await appliesByNode();
    const recorder = await recordWrites(kc);
    const hand = await handOverOperator(t, 'new');
    assert.deepEqual(hand.standbyWrote, [], 'the new replica wrote nothing while the old one led');
    assert.equal(hand.exit, 0, 'the old operator stops cleanly on SIGTERM');
    const convergeMs = await waitLag('every node to enforce the new-format objects', newLag);
    steps.push(`operator handed over in ${Math.round(hand.takeoverMs)} ms; every node on new-format objects ${Math.round(convergeMs)} ms after the new operator led`);
    await sleep(DWELL_MS);
    const changes = await kernelChangesSince(applied);
    const early = await namedEarly(recorder);
    const stats = await loop.stop();
    const final = await finalRound();
    const checks = await finalChecks();
    t.diagnostic(`agents first: ${steps.join('; ')}`);
    t.diagnostic(`agents first: ${describe(stats, flows.length)}; ${checks.shared} shared sets named, ${checks.shards} AddressSet shards; whole run ${Math.round(performance.now() - runStarted)} ms`);
    assertLoop(stats, flows);
    assert.deepEqual(changes, [], 'the switch to new-format objects changed no kernel (same sets and rules)');
    assert.deepEqual(early, [], 'the new operator wrote every set before the objects naming it');
    assert.deepEqual(final, [], 'every pair as the oracle says of the cluster once converged');
    assert.deepEqual(checks.problems, []);
    assert.ok(checks.shared >= nodeNames.length && checks.shards > 0, 'every node names shared sets, and their shards exist');
    upgraded = true;
  } finally {
    await loop?.stop();
    if (!upgraded) {
      await stopAll();
      await cluster.installCrds();
    }
  }
});

test('the operators take turns through the Lease (the release again, then this tree) with a member change while the release leads: no stale set named, no kernel change, no flow wrong', async (t) => {
  if (!upgraded) {
    t.skip('needs the end state of the agents-first test (everything of this tree, converged)');
    return;
  }
  const cluster = testCluster();
  const runStarted = performance.now();
  let loop: ContinuousLoop | undefined;
  try {
    const table = expectations(await snapshot(kc));
    const flows = loopFlows(table);
    assert.equal(flows.find((f) => f.name === 'temp → web:80')?.expect, 'open');
    loop = new ContinuousLoop(flows, { everyMs: EVERY_MS }).start();
    await sleep(DWELL_MS);
    // Back to the release's operator (a rollback), with this tree's agents.
    let applied = await appliesByNode();
    const back = await handOverOperator(t, 'old');
    assert.deepEqual(back.standbyWrote, [], 'the old replica wrote nothing while the new one led');
    const backMs = await waitLag('the old operator to rewrite every node inline and the new agents to enforce it', oldLag);
    await sleep(DWELL_MS);
    const backChanges = await kernelChangesSince(applied);
    // A member leaves a shared set while the old operator leads: the AddressSets the new operator
    // wrote before still hold it.
    loop.expect('temp → web:80', 'any');
    await k.labelPod(NSA, 'temp', { role: 'former' });
    const churnMs = await waitLag('the member change to be enforced under the old operator', oldLag);
    loop.expect('temp → web:80', 'closed');
    await sleep(DWELL_MS);
    // This tree's operator takes over again while the apiserver holds back AddressSet writes for a
    // while (as an overloaded one would): it must not name a set in a node's object before the set's
    // shards are corrected; the node keeps its current (inline) object meanwhile.
    const recorder = await recordWrites(kc);
    applied = await appliesByNode();
    const hold = await holdWrites(cluster, { group: CPS_GROUP, version: CPS_VERSION, plural: ASET_PLURAL, kind: ASET_KIND, probeSpec: PROBE_SHARD }, `fencer-upgrade-hold-${run}`);
    holds.push(hold);
    let again: Awaited<ReturnType<typeof handOverOperator>>;
    try {
      again = await handOverOperator(t, 'new');
      await sleep(HOLD_MS);
    } finally {
      await hold.release();
    }
    const releasedAt = performance.now();
    assert.deepEqual(again.standbyWrote, [], 'the new replica wrote nothing while the old one led');
    await waitLag('every node to enforce the new-format objects again', newLag, 45_000);
    const againMs = performance.now() - releasedAt;
    await sleep(DWELL_MS);
    // The kernels already hold the latest state (inline, from the old operator): the same sets and
    // rules in the new format must change nothing; a member apply here means a stale shard was enforced.
    const againChanges = await kernelChangesSince(applied);
    const events = [...recorder.events];
    const stale = await namedEarly(recorder);
    const stats = await loop.stop();
    const final = await finalRound();
    const checks = await finalChecks();
    t.diagnostic(`turns: back to the release's operator: every node inline ${Math.round(backMs)} ms after it led (kernel changes: ${backChanges.join('; ') || 'none'}); temp's relabel enforced in ${Math.round(churnMs)} ms; `
      + `this tree's operator again with AddressSet writes held back for ${HOLD_MS} ms: every node in the new format ${Math.round(againMs)} ms after the hold was lifted (${events.filter((e) => e.resource === 'aset' && e.type === 'upsert').length} shard versions, `
      + `${events.filter((e) => e.resource === 'cps' && e.type === 'upsert' && cpsFormat(e.object as CompiledPolicySet) === 'shared').length} new-format CompiledPolicySet versions seen); `
      + `kernel changes: ${againChanges.join('; ') || 'none'}; named before its shards were whole and current: ${stale.join('; ') || 'never'}`);
    t.diagnostic(`turns: ${describe(stats, flows.length)}; whole run ${Math.round(performance.now() - runStarted)} ms`);
    assertLoop(stats, flows);
    assert.deepEqual(backChanges, [], 'the switch back to inline objects changed no kernel');
    assert.deepEqual(stale, [], 'no CompiledPolicySet named a shared set before its shards held the members the compile gives it');
    assert.deepEqual(againChanges, [], 'the switch to new-format objects after the old operator\'s turn changed no kernel (no stale shard enforced)');
    assert.deepEqual(final, [], 'every pair as the oracle says of the cluster once converged');
    assert.deepEqual(checks.problems, []);
  } finally {
    await loop?.stop();
    await stopAll();
  }
});

test('operator first, then the agents: old agents reject the new-format objects, keep their last good state through a policy change, until replaced', async (t) => {
  const runStarted = performance.now();
  let loop: ContinuousLoop | undefined;
  try {
    const enforced = await installPrevious(t);
    const table = expectations(await snapshot(kc));
    const flows = loopFlows(table);
    loop = new ContinuousLoop(flows, { everyMs: EVERY_MS }).start();
    const steps: string[] = [];
    await sleep(DWELL_MS);
    const kernels = new Map<string, KernelSnapshot>();
    for (const node of nodeNames) kernels.set(node, await kernelSnapshot(netns(node)));
    const oldAgents = new Map(nodeNames.map((n) => [n, agents.get(n)!]));

    const recorder = await recordWrites(kc);
    const hand = await handOverOperator(t, 'new');
    assert.deepEqual(hand.standbyWrote, [], 'the new replica wrote nothing while the old one led');
    const ledAt = performance.now();
    // Every node's object in the new format; every old agent says it rejects it and what it still enforces.
    const rejectedAt = new Map<string, number>();
    const rejection = async (node: string, generation?: number): Promise<string | undefined> => {
      const cps = await getCps(kc, node);
      if (!cps || cpsFormat(cps) !== 'shared') return `${node}: not in the new format yet`;
      if (generation !== undefined && (cps.metadata.generation ?? 0) < generation) return `${node}: generation ${cps.metadata.generation}`;
      const degraded = cps.status?.conditions?.find((c) => c.type === 'Degraded');
      if (degraded?.status !== 'True' || degraded.reason !== 'Invalid' || degraded.observedGeneration !== cps.metadata.generation) return `${node}: Degraded ${JSON.stringify(degraded)}`;
      const insync = cps.status?.conditions?.find((c) => c.type === 'InSync');
      if (insync?.status !== 'False') return `${node}: InSync ${JSON.stringify(insync)}`;
      const last = enforced.get(node)!;
      if (cps.status?.appliedHash !== last.spec.contentHash || cps.status?.observedGeneration !== last.metadata.generation) return `${node}: status no longer reports the last good generation ${last.metadata.generation}: ${JSON.stringify(cps.status)}`;
      if (!/peer set .* is missing/.test(degraded.message) && !/sharedSets/.test(degraded.message)) return `${node}: Degraded message ${degraded.message}`;
      rejectedAt.set(node, rejectedAt.get(node) ?? performance.now());
      return undefined;
    };
    const allRejected = async (generation?: Map<string, number>) => {
      for (const node of nodeNames) {
        const why = await rejection(node, generation?.get(node));
        if (why) return why;
      }
      return undefined;
    };
    const rejectMs = await waitLag('every old agent to reject its new-format object', () => allRejected());
    const sample = (await getCps(kc, 'un1'))!.status!.conditions!.find((c) => c.type === 'Degraded')!;
    steps.push(`all three old agents reported Degraded/Invalid ${Math.round(rejectMs)} ms after the new operator led ("${sample.message.slice(0, 110)}")`);
    for (const node of nodeNames) {
      const now = await kernelSnapshot(netns(node));
      assert.equal(now.rules, kernels.get(node)!.rules, `${node}: the old agent kept its last good rules`);
      assert.equal(now.sets, kernels.get(node)!.sets, `${node}: the old agent kept its last good sets`);
      const a = await applies(oldAgents.get(node)!);
      assert.ok(a.invalid >= 1 && a.failed === 0, `${node}: applies ${JSON.stringify(a)}`);
      assert.equal((await fetch(`http://127.0.0.1:${oldAgents.get(node)!.proc.metricsPort}/healthz`)).status, 503, `${node}: the old agent reports itself unhealthy`);
    }
    assert.ok((await Promise.all(nodeNames.map((n) => shardsFor(kc, n)))).every((s) => s.length > 0), 'AddressSets written for every node');
    assert.deepEqual(await namedEarly(recorder), [], 'the new operator wrote every set before the objects naming it');
    await sleep(DWELL_MS);

    // A policy change while the old agents cannot take it: they reject the new generation too and keep the old state.
    const generations = new Map<string, number>();
    const beforeChange = await expectedSpecs(kc);
    for (const node of nodeNames) generations.set(node, (await getCps(kc, node))!.metadata.generation ?? 0);
    await applyPolicy(kc, webPolicy(true));
    const afterChange = await expectedSpecs(kc);
    // The nodes the change rewrites must show a newer generation, rejected as well.
    for (const node of nodeNames) if (afterChange.get(node)!.contentHash !== beforeChange.get(node)!.contentHash) generations.set(node, generations.get(node)! + 1);
    assert.notEqual(afterChange.get('un1')!.contentHash, beforeChange.get('un1')!.contentHash, 'the change rewrites web\'s node');
    await waitLag('the old agents to reject the changed generation as well', () => allRejected(generations));
    assert.equal(await probeOnce('probe', 'web', 81), true, 'un1 still enforces the last good state: probe → web:81 open as before the change');
    assert.equal(await probeOnce('scanner', 'web', 80), false, 'un1 still enforces the last good state: scanner → web:80 closed as before the change');
    steps.push('policy change written as a new generation, rejected by the old agents again, last good state still in the kernels');
    await sleep(DWELL_MS);

    // The agents, web's node last.
    const held: string[] = [];
    for (const [node, how] of [['un2', 'SIGTERM'], ['un3', 'SIGKILL'], ['un1', 'SIGTERM']] as const) {
      assert.equal(await rejection(node, generations.get(node)), undefined, `${node}: the old agent still holds its last good state`);
      const replacedAt = performance.now();
      const r = await replaceAgent(node, how);
      assert.equal(r.applies.invalid + r.applies.failed, 0, `${node}: the new agent rejected or failed on the new-format object`);
      held.push(`${node}: held ${((replacedAt - rejectedAt.get(node)!) / 1000).toFixed(1)} s from its first rejection (${((replacedAt - ledAt) / 1000).toFixed(1)} s after the new operator led), new agent (after ${how}, exit ${r.code}) enforced the latest in ${Math.round(r.firstSyncMs)} ms`);
      await sleep(DWELL_MS);
    }
    const convergeMs = await waitLag('every node to enforce the new-format objects', newLag);
    steps.push(...held, `converged ${Math.round(convergeMs)} ms after the last agent's first sync`);
    await sleep(DWELL_MS);
    const stats = await loop.stop();
    const final = await finalRound();
    const checks = await finalChecks();
    t.diagnostic(`operator first: ${steps.join('; ')}`);
    t.diagnostic(`operator first: ${describe(stats, flows.length)}; ${checks.shared} shared sets named, ${checks.shards} AddressSet shards; whole run ${Math.round(performance.now() - runStarted)} ms`);
    assertLoop(stats, flows);
    const seen = stats.seen['probe → web:81'];
    assert.ok(seen && seen.open > 0 && seen.closed > 0, `probe → web:81 seen open (last good state) and closed (after un1's upgrade): ${JSON.stringify(seen)}`);
    assert.deepEqual(final, [], 'every pair as the oracle says of the cluster once converged');
    assert.deepEqual(checks.problems, []);
    assert.ok(checks.shared >= nodeNames.length && checks.shards > 0, 'every node names shared sets, and their shards exist');
  } finally {
    await loop?.stop();
    await stopAll();
  }
});
