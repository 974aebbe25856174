// A slice of the scenario files through the whole of Fencer on the nftables dataplane (operator,
// CompiledPolicySets and AddressSets, agents with --dataplane nftables), with real packets; every
// file: `npm run e2e:nftables`. (test/integration/nftables-dataplane.test.ts already runs every
// file's grids through the dataplane alone.) The slice: stacked policies, egress named ports,
// ipBlock with except, relabels and a pod re-created with a new address (set and map element
// changes through the agent), same- and cross-node traffic.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadScenario } from '../../matrix/scenario.ts';
import { silentLogger } from '../../runtime/log.ts';
import { runScenarioOnSandbox } from '../../sandbox/run-scenario.ts';
import { testCluster } from './env.ts';

const SLICE = ['13-stacked-policies-union', '22-egress-named-port-80', '25-egress-ipblock-except', '32-relabel-pods-and-namespaces', '33-pod-recreated-new-ip', '51-same-node-and-cross-node'];

for (const name of SLICE) {
  test(`scenario ${name} holds with real packets on the nftables dataplane`, async () => {
    const lines: string[] = [];
    const outcome = await runScenarioOnSandbox(testCluster(), loadScenario(`test/scenarios/${name}.yaml`), (l) => lines.push(l), silentLogger(), 'fnf', 'nftables');
    assert.ok(lines[0].includes('nftables'), lines[0]);
    assert.ok(outcome.passed, lines.filter((l) => /MISMATCH|^ {2}/.test(l)).join('\n'));
    assert.ok(outcome.grids > 0);
  });
}
