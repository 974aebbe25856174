// Every scenario file, with real packets on the sandbox: the real apiserver, the operator, one agent
// per node, nodes and pods as network namespaces (the suite's shared control plane).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { globSync } from 'node:fs';
import { loadScenario } from '../../matrix/scenario.ts';
import { silentLogger } from '../../runtime/log.ts';
import { runScenarioOnSandbox } from '../../sandbox/run-scenario.ts';
import { testCluster } from './env.ts';

for (const file of globSync('test/scenarios/*.yaml').sort()) {
  test(`scenario ${file} holds with real packets`, async () => {
    const lines: string[] = [];
    const outcome = await runScenarioOnSandbox(testCluster(), loadScenario(file), (l) => lines.push(l), silentLogger(), 'fit');
    assert.ok(outcome.passed, lines.filter((l) => /MISMATCH|^ {2}/.test(l)).join('\n'));
    assert.ok(outcome.grids > 0);
  });
}
