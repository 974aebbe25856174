import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { PolicyCompiler } from '../../operator/compile/compiler.ts';
import { oracleVerdict } from '../../oracle/oracle.ts';
import { translateSpec } from '../../agent/dataplane/windows/translate.ts';
import { HnsEvaluator } from '../../agent/dataplane/windows/evaluate.ts';
import type { IngressPeerField } from '../../agent/dataplane/windows/hns-types.ts';
import { addresses, cluster, PROBES } from './arbitraries.ts';

const runs = Number(process.env.FENCER_PROPERTY_RUNS ?? 2000);

// Both readings of an In ACL's address fields are checked: the translation and the evaluator must agree
// under either, so flipping the option on a Windows node changes nothing else.
for (const field of ['LocalAddresses', 'RemoteAddresses'] as IngressPeerField[]) {
  test(`the HNS ACLs allow exactly what the reference semantics allow, for every pair, port and protocol (In peers in ${field})`, () => {
    fc.assert(
      fc.property(cluster, (c) => {
        const translated = [...PolicyCompiler.compile(c).values()].map((spec) => translateSpec(spec, { ingressPeerField: field }));
        for (const t of translated) assert.deepEqual(t.diagnostics, []);
        const hns = new HnsEvaluator(translated, field);
        const ips = addresses(c);
        for (const srcIP of ips) for (const dstIP of ips) for (const probe of PROBES) {
          const flow = { srcIP, dstIP, ...probe };
          const expected = oracleVerdict(c, flow).allowed;
          assert.equal(hns.allows(flow), expected, `${srcIP} → ${dstIP} ${probe.protocol}/${probe.port}: oracle says ${expected ? 'allowed' : 'denied'}`);
        }
      }),
      { numRuns: field === 'LocalAddresses' ? runs : Math.ceil(runs / 4) },
    );
  });
}

test('every set policy is non-empty and named by an ACL, every ACL names existing sets, and Allow and Block never share a priority', () => {
  fc.assert(
    fc.property(cluster, (c) => {
      for (const spec of PolicyCompiler.compile(c).values()) {
        const t = translateSpec(spec);
        const ids = new Set(t.setPolicies.map((s) => s.Id));
        for (const s of t.setPolicies) assert.notEqual(s.Values, '', `set policy ${s.Id} is empty`);
        const named = new Set([...t.endpoints.values()].flat().flatMap((a) => [a.LocalAddresses, a.RemoteAddresses]).filter((f) => f !== undefined).flatMap((f) => f!.split(',')));
        for (const s of t.setPolicies) assert.ok(named.has(s.Id), `set policy ${s.Id} is named by no ACL`);
        for (const acls of t.endpoints.values()) {
          const actions = new Map<string, Set<string>>();
          for (const a of acls) {
            const key = `${a.Direction}/${a.Priority}`;
            actions.set(key, (actions.get(key) ?? new Set()).add(a.Action));
            for (const f of ['LocalAddresses', 'RemoteAddresses'] as const) if (a[f] !== undefined) for (const id of a[f]!.split(',')) assert.ok(ids.has(id), `${a.Id} names unknown set ${id}`);
          }
          for (const [key, set] of actions) assert.ok(set.size === 1, `${key} mixes Allow and Block`);
        }
      }
    }),
    { numRuns: Math.ceil(runs / 4) },
  );
});
