// The compiler fuzzed at the edges of the NetworkPolicy API (bench/compiler-fuzz.ts): the compiled rules
// must match the oracle on every flow and the restore payloads must stay within their grammar. CI runs
// FENCER_FUZZ_RUNS cases (default 3000); bench/fuzz.ts runs at least 100k.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fuzzCompiler } from '../../bench/compiler-fuzz.ts';
import { recordRow } from '../faults/report.ts';

const runs = Number(process.env.FENCER_FUZZ_RUNS ?? 3000);

test(`fuzz: ${runs} edge-case clusters, zero oracle mismatches, payloads within the grammar`, (t) => {
  const r = fuzzCompiler(runs);
  t.diagnostic(`${r.cases} cases (${r.refusedByApiserver} with a policy the apiserver would refuse) in ${Math.round(r.ms)} ms (seed ${r.seed}), ${r.mismatches} mismatches`);
  if (runs >= 1000) {
    recordRow({
      id: '08-fuzz-compiler',
      fault: 'random clusters with edge-case policies (labels of every allowed character and maximal length, ports 0/1/65535, endPort below port, IPv6 and /0 blocks, overlapping excepts)',
      injection: `fast-check, ${r.cases} cases per CI run (bench/fuzz.ts: ≥ 100k); every address pair × 7 probes compared with the oracle; every node's restore payloads checked against a strict grammar`,
      observed: `${r.mismatches} oracle mismatches, 0 crashes, 0 payload lines outside the grammar in ${r.cases} cases (${(r.ms / r.cases).toFixed(2)} ms per case)`,
      convergeMs: null,
      probes: null,
      statesLost: r.mismatches,
      test: 'test/property/fuzz-compiler.test.ts',
    });
  }
  assert.equal(r.mismatches, 0, `seed ${r.seed}: ${r.firstFailure}`);
});
