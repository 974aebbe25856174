import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { PolicyCompiler } from '../../operator/compile/compiler.ts';
import { CompiledEvaluator } from '../../matrix/evaluate-compiled.ts';
import { oracleVerdict } from '../../oracle/oracle.ts';
import { addresses, cluster, PROBES } from './arbitraries.ts';

const runs = Number(process.env.FENCER_PROPERTY_RUNS ?? 2000);

test('the compiled rules allow exactly what the reference semantics allow, for every pair, port and protocol', () => {
  fc.assert(
    fc.property(cluster, (c) => {
      const evaluator = new CompiledEvaluator(PolicyCompiler.compile(c).values());
      const ips = addresses(c);
      for (const srcIP of ips) for (const dstIP of ips) for (const probe of PROBES) {
        const flow = { srcIP, dstIP, ...probe };
        const expected = oracleVerdict(c, flow).allowed;
        assert.equal(evaluator.allows(flow), expected, `${srcIP} → ${dstIP} ${probe.protocol}/${probe.port}: oracle says ${expected ? 'allowed' : 'denied'}`);
      }
    }),
    { numRuns: runs },
  );
});
