// `npm run bench [-- SECTION...]`: runs the benchmarks, prints a report, writes bench/out/results.json.
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { benchCompile, COMPILE_SIZES, compileReport } from './compile.ts';
import { AGENT_SIZES, agentReport, benchAgent, type AgentResult } from './agent.ts';

const sections = process.argv.slice(2);
const want = (s: string) => sections.length === 0 || sections.includes(s);
const results: Record<string, unknown> = {
  machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, memGB: Math.round(os.totalmem() / 2 ** 30), node: process.version },
  date: new Date().toISOString(),
};
const report: string[] = [`# Fencer benchmarks (${results.date})`, '', `Machine: ${os.cpus().length} × ${os.cpus()[0]?.model}, Node ${process.version}. Figures: median (min–max).`];

if (want('compile')) {
  const compile = COMPILE_SIZES.map((size) => {
    console.error(`compile: ${size.pods} pods, ${size.policies} policies, ${size.nodes} nodes ...`);
    return benchCompile(size);
  });
  results.compile = compile;
  report.push('', '## Compiler', '', compileReport(compile));
}

if (want('agent')) {
  const agent: AgentResult[] = [];
  for (const mode of ['nft', 'legacy'] as const) for (const size of AGENT_SIZES) {
    console.error(`agent: ${mode}, ${size.rules} rules, ${size.entries} entries ...`);
    agent.push(await benchAgent(size, mode));
  }
  results.agent = agent;
  report.push('', '## Agent apply vs the kernel floor', '', 'Each run in a fresh network namespace; the floor feeds the same payloads straight to `ipset restore` and `iptables-restore`.', '', agentReport(agent));
}

mkdirSync(new URL('./out/', import.meta.url), { recursive: true });
writeFileSync(new URL('./out/results.json', import.meta.url), JSON.stringify(results, null, 2));
writeFileSync(new URL('./out/REPORT.md', import.meta.url), report.join('\n') + '\n');
console.log(report.join('\n'));
