// Shared address sets in the fault tests: the AddressSet shards a node's agent receives, hand edits
// and deletions of them as cluster-admin, what a node's kernel holds of one set over time, and
// whether every node enforces the compile with the members its shards give. A member change
// rewrites shards and no CompiledPolicySet (its content hash names the sets, not their members), so
// the CompiledPolicySet's status alone cannot tell that a node is up to date: the kernel can.
import { ApiException, CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { isDeepStrictEqual } from 'node:util';
import type { AddressSet, AddressSetSpec } from '../../crds/address-set.ts';
import type { CompiledPolicySet, CompiledPolicySetSpec, Condition } from '../../crds/types.ts';
import { setNames } from '../../agent/dataplane/linux/names.ts';
import { PolicyCompiler } from '../../operator/compile/compiler.ts';
import { sortEntries } from '../../operator/compile/members.ts';
import { asetApi, getCps, resolveWithShards, shardsFor, snapshot, waitFor } from './harness.ts';
import { parseIpsetSave } from '../../agent/dataplane/linux/kernel-state.ts';
import { ResilientInformer } from '../../runtime/informer.ts';
import { silentLogger } from '../../runtime/log.ts';
import { inNetns, kernelProblems } from './kernel.ts';
import type { FencerProcess } from './processes.ts';

export async function getShard(kc: KubeConfig, name: string): Promise<AddressSet | undefined> {
  try {
    return (await kc.makeApiClient(CustomObjectsApi).getClusterCustomObject({ ...asetApi, name })) as AddressSet;
  } catch (e) {
    if (e instanceof ApiException && e.code === 404) return undefined;
    throw e;
  }
}

/** `kubectl delete aset <name>`. */
export async function deleteShard(kc: KubeConfig, name: string): Promise<void> {
  await kc.makeApiClient(CustomObjectsApi).deleteClusterCustomObject({ ...asetApi, name });
}

/** `kubectl edit aset <name>`: the current object with these spec fields replaced; `sentAt` (Date.now()) when the replace went out. */
export async function editShard(kc: KubeConfig, name: string, change: (spec: AddressSetSpec) => Partial<AddressSetSpec>): Promise<AddressSet & { sentAt: number }> {
  const current = await getShard(kc, name);
  if (!current) throw new Error(`AddressSet ${name} does not exist`);
  const body = { ...current, spec: { ...current.spec, ...change(current.spec) } };
  const sentAt = Date.now();
  const written = (await kc.makeApiClient(CustomObjectsApi).replaceClusterCustomObject({ ...asetApi, name, body })) as AddressSet;
  return { ...written, sentAt };
}

/** Every shard of the set (of kind ip) that holds `member` among those `node` receives, in shard order. */
export async function setHolding(kc: KubeConfig, node: string, member: string): Promise<{ set: string; shards: AddressSet[] }> {
  const shards = await shardsFor(kc, node);
  const holder = shards.find((s) => s.spec.kind === 'ip' && s.spec.members.includes(member));
  if (!holder) throw new Error(`no shard delivered to ${node} holds ${member}`);
  const set = holder.spec.set;
  return { set, shards: shards.filter((s) => s.spec.set === set && s.spec.epoch === holder.spec.epoch).sort((a, b) => a.spec.shard - b.spec.shard) };
}

export function condition(cps: CompiledPolicySet | undefined, type: Condition['type']): Condition | undefined {
  return cps?.status?.conditions?.find((c) => c.type === type);
}

export interface SetSample { at: number; netns: string; members: number; has: string[] }

/**
 * Samples one set in each network namespace every `everyMs` (`ipset save`, both kernel names of the
 * set): how many members it holds and which of the `watch` addresses are among them.
 */
export class SetSampler {
  readonly samples: SetSample[] = [];
  private readonly netns: string[];
  private readonly names: string[];
  private readonly watch: string[];
  private readonly everyMs: number;
  private running?: Promise<void>;
  private stopping = false;

  constructor(netns: string[], set: string, watch: string[], everyMs = 25) {
    this.netns = netns;
    this.names = setNames(set);
    this.watch = watch;
    this.everyMs = everyMs;
  }

  start(): this {
    this.running = (async () => {
      while (!this.stopping) {
        const started = Date.now();
        await Promise.all(this.netns.map(async (ns) => {
          const save = await inNetns(ns, ['ipset', 'save']).catch(() => undefined);
          if (save === undefined) return;
          const bySet = new Map<string, Set<string>>();
          for (const line of save.split('\n')) {
            const [verb, name, member] = line.split(' ');
            if (verb === 'create' && this.names.includes(name)) bySet.set(name, bySet.get(name) ?? new Set());
            if (verb === 'add' && this.names.includes(name)) bySet.set(name, (bySet.get(name) ?? new Set()).add(member));
          }
          const sets = [...bySet.values()];
          this.samples.push({
            at: started, netns: ns, members: Math.max(0, ...sets.map((s) => s.size)),
            has: this.watch.filter((ip) => sets.some((s) => s.has(ip))),
          });
        }));
        const left = this.everyMs - (Date.now() - started);
        if (left > 0) await new Promise((r) => setTimeout(r, left));
      }
    })();
    return this;
  }

  async stop(): Promise<SetSample[]> {
    this.stopping = true;
    await this.running;
    return this.samples;
  }

  /** The fewest members the set held in `netns` over the samples. */
  minMembers(netns: string): number {
    return Math.min(...this.samples.filter((s) => s.netns === netns).map((s) => s.members));
  }

  /** First and last sample time (in [from, to)) at which `ip` was in the set in `netns` (undefined: never seen). */
  seen(netns: string, ip: string, from = 0, to = Infinity): { first: number; last: number; samples: number } | undefined {
    const hits = this.samples.filter((s) => s.netns === netns && s.at >= from && s.at < to && s.has.includes(ip));
    if (hits.length === 0) return undefined;
    return { first: hits[0].at, last: hits[hits.length - 1].at, samples: hits.length };
  }
}

/**
 * Whether one address is in one set of a node's kernel, tested every few ms by a shell loop inside the
 * node's network namespace (`ipset test` on both kernel names of the set); only the transitions are
 * kept, with the shell's clock (EPOCHREALTIME, ms since the epoch like Date.now()).
 */
export class MemberWatch {
  readonly transitions: Array<{ at: number; present: boolean }> = [];
  tests = 0;
  private readonly child: ChildProcess;
  private readonly done: Promise<void>;

  private constructor(child: ChildProcess) {
    this.child = child;
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      const [time, what] = line.split(' ');
      const at = Math.round(Number(time.replace(',', '.')) * 1000);
      if (what.startsWith('n')) this.tests = Number(what.slice(1));
      else this.transitions.push({ at, present: what === '1' });
    });
    this.done = new Promise((resolve) => child.once('exit', () => resolve()));
  }

  static start(netns: string, set: string, ip: string): MemberWatch {
    const [a, b] = setNames(set);
    const script = `n=0; prev=x; while :; do
  if ipset -q test ${a} ${ip} || ipset -q test ${b} ${ip}; then r=1; else r=0; fi
  n=$((n+1)); if [ "$r" != "$prev" ]; then echo "$EPOCHREALTIME $r"; prev=$r; fi
  if [ $((n % 100)) = 0 ]; then echo "$EPOCHREALTIME n$n"; fi
  sleep 0.002
done`;
    return new MemberWatch(spawn('ip', ['netns', 'exec', netns, 'bash', '-c', script], { stdio: ['ignore', 'pipe', 'ignore'] }));
  }

  /** Spans (ms since the epoch) during which the address was in the set, within [from, to). */
  spans(from: number, to: number): Array<{ from: number; to: number }> {
    const out: Array<{ from: number; to: number }> = [];
    let present = false;
    let since = 0;
    for (const t of this.transitions) {
      if (t.at >= to) break;
      if (t.present === present) continue;
      if (present && t.at > from) out.push({ from: Math.max(since, from), to: t.at });
      since = t.at;
      present = t.present;
    }
    if (present) out.push({ from: Math.max(since, from), to });
    return out;
  }

  async stop(): Promise<void> {
    this.child.kill('SIGKILL');
    await this.done;
  }
}

/** Every AddressSet version the apiserver announces, with when this process heard of it (Date.now()). */
export class ShardEvents {
  readonly events: Array<{ at: number; type: 'upsert' | 'delete'; name: string; resourceVersion?: string; members: string[] }> = [];
  private readonly informer: ResilientInformer<AddressSet & { metadata: { name: string } }>;

  constructor(kc: KubeConfig) {
    const custom = kc.makeApiClient(CustomObjectsApi);
    this.informer = new ResilientInformer({
      name: 'addresssets', kc, path: `/apis/${asetApi.group}/${asetApi.version}/${asetApi.plural}`, log: silentLogger(),
      list: async () => (await custom.listClusterCustomObject(asetApi)) as never,
    });
    this.informer.onChange((type, o) => this.events.push({ at: Date.now(), type, name: o.metadata.name, resourceVersion: o.metadata.resourceVersion, members: o.spec?.members ?? [] }));
  }

  start(): Promise<void> {
    return this.informer.start();
  }

  stop(): Promise<void> {
    return this.informer.stop();
  }

  /** When the version `resourceVersion` of `name` was announced, and when the next version holding `members` was. */
  window(name: string, resourceVersion: string, members: string[]): { from: number; to?: number } | undefined {
    const i = this.events.findIndex((e) => e.name === name && e.resourceVersion === resourceVersion);
    if (i < 0) return undefined;
    const back = this.events.slice(i + 1).find((e) => e.name === name && e.type === 'upsert' && isDeepStrictEqual(e.members, members));
    return { from: this.events[i].at, to: back?.at };
  }
}

/** An agent's applies from its log (JSON lines): when each finished (ms since the epoch) and the entries it left. */
export function appliedEntries(log: string): Array<{ at: number; entries: number; kind: string }> {
  const out: Array<{ at: number; entries: number; kind: string }> = [];
  for (const line of log.split('\n')) {
    if (!line.includes('"msg":"applied"')) continue;
    try {
      const o = JSON.parse(line) as { time: string; kind: string; counts: { entries: number } };
      out.push({ at: Date.parse(o.time), entries: o.counts.entries, kind: o.kind });
    } catch { /* a line cut by a kill */ }
  }
  return out;
}

/** Member lists sorted (shards concatenate in shard order, the compile sorts each list). */
export function sortedMembers(spec: CompiledPolicySetSpec): CompiledPolicySetSpec {
  return { ...spec, ipSets: spec.ipSets.map((s) => ({ ...s, members: sortEntries([...s.members]) })) };
}

/**
 * Why the nodes do not yet enforce the compile of the cluster as it is now, or undefined when they
 * all do: each CompiledPolicySet is the compile's and reported enforced, the shards each agent
 * receives fill its shared sets with the compile's members, and each node's kernel holds exactly
 * that spec (rules, every set's members, nothing left over).
 */
export async function setsLag(kc: KubeConfig, netnsOf: (node: string) => string, nodes: string[], compile?: Map<string, CompiledPolicySetSpec>): Promise<string | undefined> {
  const [compiled, cpses, shards] = await Promise.all([
    compile ?? snapshot(kc).then((snap) => PolicyCompiler.compile(snap)), Promise.all(nodes.map((n) => getCps(kc, n))), Promise.all(nodes.map((n) => shardsFor(kc, n))),
  ]);
  const reasons = await Promise.all(nodes.map(async (node, i): Promise<string | undefined> => {
    const want = compiled.get(node);
    const cps = cpses[i];
    if (!want) return `${node}: not compiled`;
    if (!cps) return `${node}: no CompiledPolicySet`;
    if (cps.spec.contentHash !== want.contentHash) return `${node}: spec ${cps.spec.contentHash.slice(7, 15)}, compile ${want.contentHash.slice(7, 15)}`;
    if (cps.status?.appliedHash !== want.contentHash || cps.status?.observedGeneration !== cps.metadata.generation) {
      return `${node}: agent enforces generation ${cps.status?.observedGeneration} of ${cps.metadata.generation}`;
    }
    const have = resolveWithShards(cps, shards[i]);
    if (typeof have === 'string') return have;
    if (!isDeepStrictEqual(sortedMembers(have), sortedMembers(want))) {
      const differ = want.ipSets.filter((s) => !isDeepStrictEqual(sortEntries([...(have.ipSets.find((h) => h.name === s.name)?.members ?? [])]), sortEntries([...s.members])));
      return `${node}: the shards it receives differ from the compile (${differ.map((s) => s.name).join(', ') || 'spec'})`;
    }
    // Members first (one `ipset save`: cheap while they lag), the whole kernel state once they match.
    // A set the dataplane does not make (a single address goes into the rule itself) is left to kernelProblems.
    const kernel = parseIpsetSave(await inNetns(netnsOf(node), ['ipset', 'save']));
    for (const set of want.ipSets) {
      const wanted = sortEntries(set.members.map(host));
      const held = setNames(set.name).map((name) => kernel.get(name)).filter((k) => k !== undefined);
      if (held.length && !held.some((k) => isDeepStrictEqual(sortEntries([...k.members].map(host)), wanted))) return `${node}: kernel set ${set.name} does not hold the compile's ${wanted.length} members (${held.map((k) => k.members.size).join('/')})`;
    }
    const problems = await kernelProblems(netnsOf(node), want);
    return problems.length ? `${node}: kernel: ${problems.slice(0, 3).join('; ')}` : undefined;
  }));
  return reasons.find((r) => r !== undefined);
}

/** ipset prints a /32 of a hash:net set as the bare address. */
const host = (member: string) => member.replace(/\/32$/, '');

/** What waitSetsConverged went through: each reason the nodes lagged, from when (ms after the start). */
export interface Convergence { ms: number; reasons: Array<{ at: number; why: string }>; checks: number }

/**
 * Waits until setsLag reports nothing; the ms it took and the reasons seen on the way. For a cluster
 * that no longer changes (the compile is made once; the CompiledPolicySets, shards and kernels are
 * read on every check).
 */
export async function waitSetsConverged(kc: KubeConfig, netnsOf: (node: string) => string, nodes: string[], timeoutMs = 30_000): Promise<Convergence> {
  const started = performance.now();
  const reasons: Convergence['reasons'] = [];
  const compiled = PolicyCompiler.compile(await snapshot(kc));
  let checks = 0;
  try {
    await waitFor('every node to enforce the compile with the members of its shards', async () => {
      checks++;
      const why = await setsLag(kc, netnsOf, nodes, compiled);
      if (why !== undefined && why !== reasons.at(-1)?.why) reasons.push({ at: Math.round(performance.now() - started), why });
      return why === undefined;
    }, timeoutMs, 50);
  } catch (e) {
    throw new Error(`${(e as Error).message} (on the way: ${reasons.map((r) => `+${r.at} ms ${r.why}`).join(' | ')})`);
  }
  return { ms: performance.now() - started, reasons, checks };
}

/** SIGSTOP to the process group: the process keeps its connections and leases but does nothing. */
export function freeze(p: FencerProcess): void {
  process.kill(-p.pid, 'SIGSTOP');
}

/** SIGCONT to the process group (harmless when it runs or has exited). */
export function thaw(p: FencerProcess | undefined): void {
  if (!p?.alive()) return;
  try {
    process.kill(-p.pid, 'SIGCONT');
  } catch { /* gone */ }
}
