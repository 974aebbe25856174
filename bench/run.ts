// `npm run bench [-- SECTION...]`: runs the benchmarks, prints a report, writes bench/out/results.json.
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { benchCompile, COMPILE_SIZES, compileReport } from './compile.ts';

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

mkdirSync(new URL('./out/', import.meta.url), { recursive: true });
writeFileSync(new URL('./out/results.json', import.meta.url), JSON.stringify(results, null, 2));
writeFileSync(new URL('./out/REPORT.md', import.meta.url), report.join('\n') + '\n');
console.log(report.join('\n'));
