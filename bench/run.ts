// `npm run bench [-- SECTION...]`: runs the benchmarks; a full run writes bench/REPORT.md, bench/results.json and charts, a partial one bench/out/.
import { mkdirSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import { benchCompile, COMPILE_SIZES, compileReport } from './compile.ts';
import { AGENT_SIZES, agentReport, benchAgent, type AgentResult } from './agent.ts';
import { azureNpmCase, benchFromScratch, benchNftAgent, fromScratchReport, nftAgentReport } from './agent-nftables.ts';
import { benchE2e } from './e2e.ts';
import { benchLabelCost, labelCostReport } from './label-cost.ts';
import { benchScale, benchScaleMax, SCALE_SIZES, scaleMaxReport, scaleReport } from './scale.ts';
import { benchOperator, operatorReport } from './operator.ts';
import { benchRuleEconomy, ruleEconomyReport } from './rule-economy.ts';
import { benchFuzz, fuzzReport } from './fuzz.ts';
import { benchWatchCost } from './watch-cost.ts';
import { watchCostReport } from './watch-cost-report.ts';
import { fmt } from './stats.ts';
import { lineChart } from './svg.ts';

const sections = process.argv.slice(2);
const want = (s: string) => sections.length === 0 || sections.includes(s);
const results: Record<string, unknown> = {
  machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, memGB: Math.round(os.totalmem() / 2 ** 30), node: process.version },
  date: new Date().toISOString(),
};
const charts: Record<string, string> = {};
const report: string[] = [`# Fencer benchmarks (${results.date})`, '', `Machine: ${os.cpus().length} × ${os.cpus()[0]?.model}, Node ${process.version}. Figures: median (min–max).`];

if (want('compile')) {
  const compile = COMPILE_SIZES.map((size) => {
    console.error(`compile: ${size.pods} pods, ${size.policies} policies, ${size.nodes} nodes ...`);
    return benchCompile(size);
  });
  results.compile = compile;
  const byPolicyRatio = compile.filter((r) => r.size.policies * 10 === r.size.pods);
  charts['compile.svg'] = lineChart('Full compile time versus cluster size', 'pods (policies = pods / 10)', 'ms', [
    { name: 'full compile', points: byPolicyRatio.map((r) => ({ x: r.size.pods, y: r.fullMs.median })) },
  ]);
  report.push('', '## Compiler', '', 'Targets: incremental ≤ 1% of a full compile; 10k pods + 10k policies in ≤ 1 s and ≤ 300 MB (Antrea: ~2 s, 170 MB).', '', compileReport(compile), '', '![full compile time](compile.svg)');
}

if (want('agent')) {
  const agent: AgentResult[] = [];
  for (const mode of ['nft', 'legacy'] as const) for (const size of AGENT_SIZES) {
    console.error(`agent: ${mode}, ${size.rules} rules, ${size.entries} entries ...`);
    agent.push(await benchAgent(size, mode));
  }
  results.agent = agent;
  for (const mode of ['nft', 'legacy'] as const) {
    const rows = agent.filter((r) => r.mode === mode);
    charts[`agent-${mode}.svg`] = lineChart(`Agent apply versus the kernel floor (${mode})`, 'set entries', 'ms', [
      { name: 'full apply', points: rows.map((r) => ({ x: r.size.entries, y: r.fullMs.median })) },
      { name: 'floor', points: rows.map((r) => ({ x: r.size.entries, y: r.floorMs.median })) },
      { name: 'one-member change', points: rows.map((r) => ({ x: r.size.entries, y: r.memberChangeMs.median })) },
    ]);
  }
  report.push('', '## Agent apply vs the kernel floor', '', 'Each run in a fresh network namespace; the floor feeds the same payloads straight to `ipset restore` and `iptables-restore`.', '', agentReport(agent), '', 'Targets: full apply ≤ 1.2× the floor; one-member change ≤ 20 ms at 100k entries (Calico felix: 20–30 ms to rebuild a 10k-entry set; Azure NPM: 4 min for 640 policies on legacy, hours on nft).', '', '![nft](agent-nft.svg) ![legacy](agent-legacy.svg)');
  const nftables = [];
  for (const size of AGENT_SIZES) {
    console.error(`agent: nftables dataplane, ${size.rules} rules, ${size.entries} entries ...`);
    nftables.push(await benchNftAgent(size));
  }
  results.agentNftables = nftables;
  // The iptables dataplane on iptables-nft, from the rows above: what a node would otherwise run.
  const iptablesFull = new Map(agent.filter((r) => r.mode === 'nft').map((r) => [`${r.size.rules}/${r.size.entries}`, r.fullMs]));
  report.push('', '### The nftables dataplane', '', 'Same specs, same run. The floor feeds the script the first apply commits straight to `nft -f` through an already started shell. A pod joining adds one element, a pod leaving deletes one: a transaction that deletes makes nft wait, as it closes its netlink socket, for the kernel to free what was deleted.', '', nftAgentReport(nftables, iptablesFull), '', 'Targets: full apply ≤ 1.1× its floor and ≤ 0.5× the iptables dataplane\'s at 10k rules; one-member change ≤ 5 ms at 100k entries.');
  console.error('agent: 640 policies from scratch (Azure NPM\'s worst case) on each dataplane ...');
  const scratch = await benchFromScratch(azureNpmCase());
  results.agentFromScratch = scratch;
  report.push('', '### 640 policies programmed from scratch', '', 'One node holding every pod of a synthetic cluster (250 pods, 640 policies of the usual shapes) compiled as the operator does; each dataplane programs it into an empty network namespace. Azure NPM took 4 minutes on iptables-legacy and 9–22 hours on iptables-nft for 640 policies (azure-container-networking PR #1969).', '', fromScratchReport(scratch));
}

if (want('economy')) {
  const economy = benchRuleEconomy([{ pods: 1000, policies: 100, nodes: 10 }, { pods: 10000, policies: 1000, nodes: 100 }, { pods: 10000, policies: 1000, nodes: 40 }, { pods: 10000, policies: 10000, nodes: 100 }]);
  results.economy = economy;
  report.push('', '## Rule economy', '', 'Per node, from the Linux translation. A packet walks the hook chain, the egress and ingress dispatch (one rule per local pod of a selected group) and the chains of the targets it belongs to: the length grows with the rules of the policies selecting that pod and with the local pods, never with all policies in the cluster. With the nftables dataplane the dispatch is one verdict-map lookup per direction: the last column does not grow with the local pods.', '', ruleEconomyReport(economy));
}

if (want('operator')) {
  console.error('operator: real apiserver, 10 nodes, 1000 pods, 100 policies ...');
  const operator = await benchOperator();
  results.operator = operator;
  report.push('', '## Operator against the real apiserver', '', operatorReport(operator));
}

if (want('scale')) {
  const scale = SCALE_SIZES.map((size) => {
    console.error(`scale: ${size.nodes} nodes, ${size.pods} pods, ${size.policies} policies ...`);
    return benchScale(size);
  });
  console.error('scale: 5000 nodes, 250000 pods, 25000 policies (compile only) ...');
  const scaleMax = benchScaleMax();
  results.scale = scale;
  results.scaleMax = scaleMax;
  report.push('', '## Cluster scale (simulation, no kernel)', '', 'Churn: pods relabelled, created and deleted in turn. Writes and bytes are what the operator sends to the apiserver: node objects (CompiledPolicySets) and AddressSet shards (shared sets, written once however many nodes use them); the last column is what the apiserver would send to nodes if every node watched every pod, namespace and policy (Azure NPM). Measured on a real apiserver and etcd: "Watch cost".', '', scaleReport(scale), '', scaleMaxReport(scaleMax));
}

if (want('labels')) {
  console.error('labels: consumer labels on a shard, three schemes, on a real apiserver ...');
  const labels = await benchLabelCost();
  results.labels = labels;
  report.push('', '## Naming the nodes that use a shared set', '', 'One 128-member AddressSet shard rewritten ten times with one member changed, labelled by each scheme (labels are also listed in managedFields, so each costs about twice its text).', '', labelCostReport(labels));
}

if (want('e2e')) {
  console.error('e2e: sandbox with 4 nodes and 60 pods ...');
  const e2e = await benchE2e();
  results.e2e = e2e;
  report.push('', '## End to end in the sandbox', '', `${e2e.nodes} nodes, ${e2e.pods} pods, agents as processes; median (min–max; with ${e2e.iterations} changes the max stands for p99). Probes: a connection attempt every 5 ms from the client pod, timed by the start of the first attempt that saw the new verdict (half the changes flip it). Label changes: only those that change what a node enforces (half of them).`, '',
    '| measure | ms |', '|---|---|',
    `| policy change → enforced on every node, from sending the write | ${fmt(e2e.policyEnforcedMs, 0)} |`,
    `| policy change → enforced on every node, from the apiserver's answer (accepted) | ${fmt(e2e.policyEnforcedFromAnswerMs, 0)} |`,
    `| pod label change → enforced on every node, from sending the write | ${fmt(e2e.labelEnforcedMs, 0)} |`,
    `| pod label change → enforced on every node, from the apiserver's answer (accepted) | ${fmt(e2e.labelEnforcedFromAnswerMs, 0)} |`,
    `| policy change that opens a flow → a connection attempt sees it open | ${fmt(e2e.probeSeesMs, 0)} |`,
    `| pod label change that closes a flow → a connection attempt sees it closed | ${fmt(e2e.labelProbeSeesMs, 0)} |`,
    `| new pod selected by a deny policy: time it answered before enforcement | ${fmt(e2e.newPodReachableMs, 0)} |`,
    '', 'Anchors: Cilium p50 9 ms / p99 317 ms at 1k nodes; Azure NPM CI accepts 30 s.');
}

if (sections.includes('fuzz')) {
  // Only on request: 100k cases take over a minute.
  console.error('fuzz: compiled rules against the oracle ...');
  const fuzz = benchFuzz();
  results.fuzz = fuzz;
  report.push('', '## Compiler fuzzing', '', fuzzReport(fuzz));
}

if (sections.includes('watch-cost')) {
  // Only on request: a real control plane per size, 50 pods a node; WATCH_COST_NODES=100 for a quick run.
  const watchCost = await benchWatchCost();
  results.watchCost = watchCost;
  report.push('', '## Watch cost: etcd, apiserver and node watches under pod churn', '', watchCostReport(watchCost));
}

if (want('footprint')) {
  console.error('footprint: operator and agent as separate processes (scripts/measure-resources.ts) ...');
  try {
    const out = execFileSync(process.execPath, ['scripts/measure-resources.ts', '11', '1000', '100', '--seconds', '20'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    const [json, ...lines] = out.trim().split('\n');
    results.footprint = JSON.parse(json);
    report.push('', '## Footprint', '', 'The operator and one agent as separate processes against the real apiserver (`scripts/measure-resources.ts 11 1000 100`). Targets: agent RSS ≤ 80 MiB idle and ≤ 100 MiB under 20 changes/s; agent start → its node enforced ≤ 1 s.', '', '```', ...lines, '```');
  } catch (e) {
    report.push('', '## Footprint', '', `The measurement failed: ${(e as Error).message.split('\n')[0]}`);
  }
}

// A partial run (named sections) goes to bench/out/; a full run replaces the committed report.
const dir = new URL(sections.length ? './out/' : './', import.meta.url);
mkdirSync(dir, { recursive: true });
writeFileSync(new URL('results.json', dir), JSON.stringify(results, null, 2));
writeFileSync(new URL('REPORT.md', dir), report.join('\n') + '\n');
for (const [name, svg] of Object.entries(charts)) writeFileSync(new URL(name, dir), svg);
console.log(report.join('\n'));
