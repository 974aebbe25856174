// Agent benchmark: full apply and one-member change against the kernel floor (the same payloads fed
// straight to ipset restore and iptables-restore through an already started shell, the way the agent
// runs its tools), each in a fresh network namespace.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { CPS_API_VERSION, CPS_KIND, type CompiledPolicySetSpec, type IPSet, type Rule } from '../crds/types.ts';
import type { Dataplane } from '../agent/dataplane/dataplane.ts';
import { agentMetrics } from '../agent/metrics.ts';
import { NodeAgent } from '../agent/node-agent.ts';
import { silentLogger } from '../runtime/log.ts';
import { LinuxDataplane } from '../agent/dataplane/linux/dataplane.ts';
import { planApply } from '../agent/dataplane/linux/plan.ts';
import { ShellRunner } from '../agent/dataplane/linux/shell-runner.ts';
import { toolsFor, type IptablesMode } from '../agent/dataplane/linux/backend.ts';
import { stableId } from '../operator/compile/naming.ts';
import { shardOf } from '../operator/set-layout.ts';
import { desiredShards } from '../operator/set-plan.ts';
import { SharedSetCache } from '../agent/shared-sets.ts';
import type { AddressSet } from '../crds/address-set.ts';
import { fmt, stat, type Stat } from './stats.ts';

export interface AgentSize { rules: number; entries: number }
export interface AgentResult { size: AgentSize; mode: IptablesMode; fullMs: Stat; floorMs: Stat; memberChangeMs: Stat; agentMemberChangeMs: Stat; agentShardChangeMs: Stat; startupReadMs: Stat; ratio: number }

/** Measured one-member changes per run, after one that warms the path up. */
const MEMBER_CHANGES = 5;

export const AGENT_SIZES: AgentSize[] = [
  { rules: 100, entries: 1000 }, { rules: 1000, entries: 10000 }, { rules: 10000, entries: 100000 },
];

/** A spec with `rules` rules over rules/10 peer sets holding `entries` addresses in all. */
export function syntheticSpec(size: AgentSize): CompiledPolicySetSpec {
  const setCount = Math.max(1, Math.floor(size.rules / 10));
  const ipSets: IPSet[] = Array.from({ length: setCount }, (_, i) => ({
    name: stableId('p', 'bench', String(i)), kind: 'ip', origin: `bench set ${i}`,
    members: Array.from({ length: Math.floor(size.entries / setCount) }, (_, j) => address(i * 100000 + j)),
  }));
  const podSet = stableId('t', 'bench');
  ipSets.push({ name: podSet, kind: 'ip', origin: 'local pods', members: Array.from({ length: 10 }, (_, i) => `10.244.1.${10 + i}`) });
  const rules: Rule[] = Array.from({ length: size.rules }, (_, i) => ({
    id: stableId('r', 'bench', String(i)), policy: `bench/p${i}`, index: 0, anyPeer: false, peers: [ipSets[i % setCount].name],
    anyPort: false, ports: [{ protocol: 'TCP', port: 1000 + (i % 60000) }],
  }));
  return {
    nodeName: 'node-1', contentHash: `sha256:${'0'.repeat(64)}`, podCIDRs: ['10.244.1.0/24'], policies: [], ipSets,
    targets: [{ podSet, pods: [], policies: [], ingress: { rules } }], diagnostics: [],
    counts: { policies: 0, rules: size.rules, sets: ipSets.length, entries: size.entries, pods: 10 },
  };
}

function address(n: number): string {
  return `10.${64 + Math.floor(n / 65536) % 128}.${Math.floor(n / 256) % 256}.${n % 256}`;
}

/** Runs `fn` in a fresh network namespace (the agent benches of both dataplanes). */
export function withNetns<T>(fn: (name: string) => Promise<T>): Promise<T> {
  const name = `fencer-b-${randomBytes(3).toString('hex')}`;
  execFileSync('ip', ['netns', 'add', name]);
  // The kernel frees a deleted namespace's rules and sets in the background, where that work would
  // slow down the next run's measurement: they are removed here first, by tools that wait for it.
  return fn(name).finally(() => {
    execFileSync('ip', ['netns', 'exec', name, 'sh', '-c', 'for t in iptables-nft iptables-legacy; do $t -F; $t -X; done 2>/dev/null; ipset destroy 2>/dev/null; nft flush ruleset; true']);
    execFileSync('ip', ['netns', 'del', name]);
  });
}

/** Small sizes take ~20 ms a run, where one slow process spawn moves a median of three: they get more runs. */
export async function benchAgent(size: AgentSize, mode: IptablesMode, runs = size.entries >= 100000 ? 3 : 9): Promise<AgentResult> {
  const spec = syntheticSpec(size);
  const plan = planApply(spec, { sets: new Map(), chains: new Map(), forward: [] });
  const tools = toolsFor(mode);
  const full: number[] = [];
  const floor: number[] = [];
  const member: number[] = [];
  const agentMember: number[] = [];
  const shardMember: number[] = [];
  const read: number[] = [];
  for (let i = 0; i < runs; i++) {
    // The floor runs the same payloads through the agent's kind of runner, a shell already started.
    await withNetns(async (ns) => {
      const runner = new ShellRunner(['ip', 'netns', 'exec', ns]);
      try {
        await runner.run('true', []);
        const t = performance.now();
        await runner.run('ipset', ['restore'], plan.ipset);
        await runner.run(tools.restore, ['-w', '--noflush'], plan.iptables);
        floor.push(performance.now() - t);
      } finally {
        await runner.close();
      }
    });
    await withNetns(async (ns) => {
      const dp = new LinuxDataplane({ runner: new ShellRunner(['ip', 'netns', 'exec', ns]), tools });
      try {
        // The agent reads the kernel while its watch lists (before any CPS arrives): timed on its own.
        let t = performance.now();
        await dp.prepare();
        read.push(performance.now() - t);
        t = performance.now();
        await dp.apply(spec);
        full.push(performance.now() - t);
        // The same dataplane behind a NodeAgent, as `fencer agent` runs it: validation, apply, status.
        let dpMs = 0;
        const timed: Dataplane = {
          apply: async (s) => { const t0 = performance.now(); const r = await dp.apply(s); dpMs = performance.now() - t0; if (r.kind !== 'members' && s !== spec) throw new Error(`a one-member change planned ${r.kind}`); return r; },
          drift: (s) => dp.drift(s), cleanup: () => dp.cleanup(),
        };
        const agent = new NodeAgent({ nodeName: spec.nodeName, agentName: 'bench', dataplane: timed, statusWriter: { writeStatus: async () => true }, metrics: agentMetrics(), log: silentLogger(), driftIntervalMs: 0 });
        let generation = 1;
        // Objects arrive decoded from the watch: each offer gets a fresh copy, never one shared with the last.
        const decoded = (s: CompiledPolicySetSpec) => JSON.parse(JSON.stringify({ apiVersion: CPS_API_VERSION, kind: CPS_KIND, metadata: { name: s.nodeName, generation: generation++ }, spec: s }));
        await agent.offer(decoded(spec));
        // One change warms the member path up (an agent makes many in its life); the next ones are measured.
        let current = spec;
        for (let change = 0; change <= MEMBER_CHANGES; change++) {
          const peer = current.ipSets[change % (current.ipSets.length - 1)];
          current = { ...current, contentHash: `sha256:${String(change % 10).repeat(64)}`, ipSets: current.ipSets.map((s) => (s === peer ? { ...s, members: [...s.members, `10.255.${change}.1`] } : s)) };
          const cps = decoded(current);
          t = performance.now();
          await agent.offer(cps);
          if (change > 0) {
            agentMember.push(performance.now() - t);
            member.push(dpMs);
          }
        }
        if (agent.enforcedGeneration() !== generation - 1) throw new Error('the agent did not enforce the last change');
        await agent.stop();
        // The same change as it arrives now: the node's spec names the sets, one AddressSet shard changes.
        shardMember.push(...await shardChanges(current, dp));
      } finally {
        await dp.close();
      }
    });
  }
  const fullMs = stat(full);
  const floorMs = stat(floor);
  return { size, mode, fullMs, floorMs, memberChangeMs: stat(member), agentMemberChangeMs: stat(agentMember), agentShardChangeMs: stat(shardMember), startupReadMs: stat(read), ratio: fullMs.median / floorMs.median };
}

export function agentReport(results: AgentResult[]): string {
  const rows = results.map((r) => `| ${r.mode} | ${r.size.rules} | ${r.size.entries} | ${fmt(r.startupReadMs, 1)} | ${fmt(r.fullMs, 0)} | ${fmt(r.floorMs, 0)} | ${r.ratio.toFixed(2)} | ${fmt(r.memberChangeMs, 1)} | ${fmt(r.agentMemberChangeMs, 1)} | ${fmt(r.agentShardChangeMs, 1)} |`);
  return ['| backend | rules | set entries | start-up kernel read ms | full apply ms | floor ms | apply / floor | one-member change: dataplane ms | one-member change: agent ms (whole spec arrives) | one-member change: agent ms (one AddressSet shard arrives) |', '|---|---|---|---|---|---|---|---|---|---|', ...rows].join('\n');
}

/** One-member changes that arrive as one rewritten AddressSet shard, through a NodeAgent holding the spec's sets as shards. */
async function shardChanges(full: CompiledPolicySetSpec, dataplane: Dataplane): Promise<number[]> {
  const node = full.nodeName;
  const shared = full.ipSets.filter((s) => !s.name.startsWith('t-'));
  let rv = 1;
  const decodedShard = (o: AddressSet): AddressSet => JSON.parse(JSON.stringify({ ...o, metadata: { ...o.metadata, uid: o.metadata.name, resourceVersion: String(rv++) } }));
  const shards = new Map<string, AddressSet[]>(shared.map((s) => [s.name, desiredShards({ name: s.name, kind: s.kind, origin: s.origin, members: s.members, nodes: [node] }, [node], [])]));
  const spec: CompiledPolicySetSpec = {
    ...full, contentHash: `sha256:${'a'.repeat(64)}`, ipSets: full.ipSets.filter((s) => s.name.startsWith('t-')),
    sharedSets: shared.map((s) => ({ name: s.name, kind: s.kind, origin: s.origin })),
  };
  const cache = new SharedSetCache();
  let kind = '';
  const watched: Dataplane = { ...dataplane, apply: async (s) => { const r = await dataplane.apply(s); kind = r.kind; return r; } };
  const agent = new NodeAgent({ nodeName: node, agentName: 'bench', dataplane: watched, statusWriter: { writeStatus: async () => true }, metrics: agentMetrics(), log: silentLogger(), driftIntervalMs: 0, sharedSets: cache });
  for (const list of shards.values()) for (const o of list) cache.apply('node', 'upsert', decodedShard(o));
  await agent.offer(JSON.parse(JSON.stringify({ apiVersion: CPS_API_VERSION, kind: CPS_KIND, metadata: { name: node, generation: 1 }, spec })));
  if (agent.enforcedGeneration() !== 1) throw new Error(`the agent did not enforce the spec resolved from shards: ${JSON.stringify(cache.lookup(spec.sharedSets![0]))?.slice(0, 300)}`);
  const times: number[] = [];
  for (let change = 0; change <= MEMBER_CHANGES; change++) {
    const set = shared[change % shared.length];
    const list = shards.get(set.name)!;
    const member = `10.254.${change}.1`;
    const i = shardOf(member, list.length);
    list[i] = { ...list[i], spec: { ...list[i].spec, members: [...list[i].spec.members, member], size: list[i].spec.size + 1 } };
    const arrived = decodedShard(list[i]);
    const t = performance.now();
    if (cache.apply('node', 'upsert', arrived)) await agent.offerSets();
    const ms = performance.now() - t;
    if (kind !== 'members') throw new Error(`a one-shard change planned ${kind}`);
    if (change > 0) times.push(ms);
  }
  await agent.stop();
  return times;
}
