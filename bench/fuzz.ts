// `benchFuzz()`: the compiler fuzzed at the edges of the NetworkPolicy API with at least 100k cases
// (bench/compiler-fuzz.ts): compiled rules against the oracle on every flow, restore payloads against
// their grammar. `node bench/fuzz.ts [CASES]` runs it on its own.
import { fuzzCompiler, type FuzzResult } from './compiler-fuzz.ts';

export const FUZZ_CASES = 100_000;

export function benchFuzz(cases = FUZZ_CASES, seed?: number): FuzzResult {
  // In chunks, so a long run reports progress and one seed's failure is reproducible on its own.
  const chunk = 10_000;
  const total: FuzzResult = { cases: 0, refusedByApiserver: 0, mismatches: 0, ms: 0, seed: seed ?? Date.now() % 2 ** 31 };
  for (let done = 0; done < cases; done += chunk) {
    const r = fuzzCompiler(Math.min(chunk, cases - done), total.seed + done);
    total.cases += r.cases;
    total.refusedByApiserver += r.refusedByApiserver;
    total.mismatches += r.mismatches;
    total.ms += r.ms;
    total.firstFailure ??= r.firstFailure && `seed ${r.seed}: ${r.firstFailure}`;
    console.error(`fuzz: ${total.cases}/${cases} cases, ${total.mismatches} mismatches`);
  }
  return total;
}

export function fuzzReport(r: FuzzResult): string {
  return [
    '| measure | value |', '|---|---|',
    `| cases | ${r.cases} (${r.refusedByApiserver} with a policy the apiserver would refuse) |`,
    `| oracle mismatches | ${r.mismatches} |`,
    `| time | ${(r.ms / 1000).toFixed(1)} s (${(r.ms / r.cases).toFixed(2)} ms per case) |`,
    `| first seed | ${r.seed} |`,
    ...(r.firstFailure ? [`| first failure | ${r.firstFailure.split('\n')[0].replace(/\|/g, '\\|')} |`] : []),
  ].join('\n');
}

if (import.meta.main) {
  const r = benchFuzz(Number(process.argv[2] ?? FUZZ_CASES));
  console.log(fuzzReport(r));
  process.exitCode = r.mismatches ? 1 : 0;
}
