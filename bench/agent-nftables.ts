// The nftables dataplane against its own floor (the same `nft -f` script the first apply commits,
// fed to nft in one process run through an already started shell) and beside the iptables
// dataplane's full apply from the same run; one-member changes split into a pod joining (element
// added) and a pod leaving (element deleted), since nft waits for the kernel to free what a
// transaction deleted before it exits. Each run in a fresh network namespace.
import type { CompiledPolicySetSpec } from '../crds/types.ts';
import { ShellRunner } from '../agent/dataplane/linux/shell-runner.ts';
import { createNftablesDataplane } from '../agent/dataplane/nftables/dataplane.ts';
import { renderTable } from '../agent/dataplane/nftables/render.ts';
import { desiredState } from '../agent/dataplane/nftables/translate.ts';
import { LinuxDataplane } from '../agent/dataplane/linux/dataplane.ts';
import { toolsFor, type IptablesMode } from '../agent/dataplane/linux/backend.ts';
import { PolicyCompiler } from '../operator/compile/compiler.ts';
import { syntheticCluster } from './synthetic.ts';
import { syntheticSpec, withNetns, type AgentSize } from './agent.ts';
import { fmt, stat, type Stat } from './stats.ts';

export interface NftAgentResult {
  size: AgentSize;
  fullMs: Stat;
  floorMs: Stat;
  ratio: number;
  joinMs: Stat;
  leaveMs: Stat;
  ruleChangeMs: Stat;
  restartMs: Stat;
  /** Kernel objects a spec becomes: rules, sets (maps included) and their elements. */
  counts: { rules: number; sets: number; entries: number };
}

const CHANGES = 5;

const shell = (ns: string) => new ShellRunner(['ip', 'netns', 'exec', ns]);

export async function benchNftAgent(size: AgentSize, runs = size.entries >= 100000 ? 3 : 7): Promise<NftAgentResult> {
  const spec = syntheticSpec(size);
  const script = renderTable(desiredState(spec));
  const full: number[] = [];
  const floor: number[] = [];
  const join: number[] = [];
  const leave: number[] = [];
  const ruleChange: number[] = [];
  const restart: number[] = [];
  for (let i = 0; i < runs; i++) {
    await withNetns(async (ns) => {
      const runner = shell(ns);
      try {
        await runner.run('true', []);
        const t = performance.now();
        const r = await runner.run('nft', ['-f', '-'], script);
        floor.push(performance.now() - t);
        if (r.exitCode !== 0) throw new Error(`floor: ${r.stderr}`);
      } finally {
        await runner.close();
      }
    });
    await withNetns(async (ns) => {
      const dp = createNftablesDataplane({ netns: ns });
      try {
        await dp.prepare();
        let t = performance.now();
        await dp.apply(spec);
        full.push(performance.now() - t);
        let current = spec;
        for (let change = 0; change <= CHANGES; change++) {
          const peer = current.ipSets[change % (current.ipSets.length - 1)];
          const added = `10.255.${change}.1`;
          for (const step of ['join', 'leave'] as const) {
            current = { ...current, ipSets: current.ipSets.map((s) => (s.name !== peer.name ? s : { ...s, members: step === 'join' ? [...s.members, added] : s.members.filter((m) => m !== added) })) };
            t = performance.now();
            const r = await dp.apply(current);
            const ms = performance.now() - t;
            if (r.kind !== 'members') throw new Error(`a one-member change planned ${r.kind}`);
            if (change > 0) (step === 'join' ? join : leave).push(ms);
          }
        }
        // A rule change: one rule's port moves (its chain is flushed and refilled, nothing else).
        for (let change = 0; change <= CHANGES; change++) {
          const [target] = current.targets;
          const rules = target.ingress!.rules.map((r, k) => (k === 0 ? { ...r, ports: [{ protocol: 'TCP' as const, port: 20000 + change }] } : r));
          current = { ...current, targets: [{ ...target, ingress: { ...target.ingress!, rules } }] };
          t = performance.now();
          const r = await dp.apply(current);
          if (r.kind !== 'rules') throw new Error(`a rule change planned ${r.kind}`);
          if (change > 0) ruleChange.push(performance.now() - t);
        }
        // A restarted agent: a new dataplane reads the table and finds nothing to change.
        const again = createNftablesDataplane({ netns: ns });
        try {
          t = performance.now();
          const r = await again.apply(current);
          restart.push(performance.now() - t);
          if (r.kind !== 'noop') throw new Error(`a restart with nothing changed planned ${r.kind}`);
        } finally {
          await again.close();
        }
      } finally {
        await dp.close();
      }
    });
  }
  const fullMs = stat(full);
  const floorMs = stat(floor);
  return { size, fullMs, floorMs, ratio: fullMs.median / floorMs.median, joinMs: stat(join), leaveMs: stat(leave), ruleChangeMs: stat(ruleChange), restartMs: stat(restart), counts: desiredState(spec).counts };
}

export function nftAgentReport(results: NftAgentResult[], iptablesFull: Map<string, Stat>): string {
  const rows = results.map((r) => {
    const ipt = iptablesFull.get(`${r.size.rules}/${r.size.entries}`);
    return `| ${r.size.rules} | ${r.size.entries} | ${fmt(r.fullMs, 0)} | ${fmt(r.floorMs, 0)} | ${r.ratio.toFixed(2)} | ${ipt ? `${fmt(ipt, 0)} (${(r.fullMs.median / ipt.median).toFixed(2)}×)` : '—'} | ${fmt(r.joinMs, 1)} | ${fmt(r.leaveMs, 1)} | ${fmt(r.ruleChangeMs, 1)} | ${fmt(r.restartMs, 1)} |`;
  });
  return ['| rules | set entries | full apply ms | floor (`nft -f` of the same script) ms | apply / floor | iptables dataplane full apply ms (nftables / iptables) | pod joins a set ms | pod leaves a set ms | rule change ms | restart, nothing changed ms |', '|---|---|---|---|---|---|---|---|---|---|', ...rows].join('\n');
}

/** Azure NPM's worst case (azure-container-networking PR #1969): 640 policies programmed from scratch on one node. */
export function azureNpmCase(): CompiledPolicySetSpec {
  const specs = PolicyCompiler.compile(syntheticCluster({ pods: 250, policies: 640, nodes: 1 }));
  return specs.get('node-0')!;
}

export interface FromScratchResult { dataplane: string; ms: Stat; counts: { rules: number; sets: number; entries: number } }

export async function benchFromScratch(spec: CompiledPolicySetSpec, runs = 5): Promise<FromScratchResult[]> {
  const out: FromScratchResult[] = [];
  const backends: Array<[string, (ns: string) => { apply(s: CompiledPolicySetSpec): Promise<{ counts: FromScratchResult['counts'] }>; close(): Promise<void> }]> = [
    ['nftables', (ns) => createNftablesDataplane({ netns: ns })],
    ...(['nft', 'legacy'] as IptablesMode[]).map((mode) => [`iptables (${mode})`, (ns: string) => new LinuxDataplane({ runner: shell(ns), tools: toolsFor(mode) })] as [string, (ns: string) => LinuxDataplane]),
  ];
  for (const [name, make] of backends) {
    const ms: number[] = [];
    let counts = { rules: 0, sets: 0, entries: 0 };
    for (let i = 0; i < runs; i++) {
      await withNetns(async (ns) => {
        const dp = make(ns);
        try {
          const t = performance.now();
          counts = (await dp.apply(spec)).counts;
          ms.push(performance.now() - t);
        } finally {
          await dp.close();
        }
      });
    }
    out.push({ dataplane: name, ms: stat(ms), counts });
  }
  return out;
}

export function fromScratchReport(results: FromScratchResult[]): string {
  return ['| dataplane | rules | sets | entries | programmed from scratch ms |', '|---|---|---|---|---|', ...results.map((r) => `| ${r.dataplane} | ${r.counts.rules} | ${r.counts.sets} | ${r.counts.entries} | ${fmt(r.ms, 0)} |`)].join('\n');
}
