// Compiled specs of a scenario file after a given step, for dataplane tests.
import type { CompiledPolicySetSpec } from '../../crds/types.ts';
import type { ClusterSnapshot } from '../../model/cluster.ts';
import { loadScenario } from '../../matrix/scenario.ts';
import { ScenarioWorld } from '../../matrix/world.ts';
import { PolicyCompiler } from '../../operator/compile/compiler.ts';

export function scenarioSpecs(file: string, steps: number): Map<string, CompiledPolicySetSpec> {
  return PolicyCompiler.compile(scenarioSnapshot(file, steps));
}

/** The cluster a scenario file describes after a given step. */
export function scenarioSnapshot(file: string, steps: number): ClusterSnapshot {
  const scenario = loadScenario(file);
  const world = new ScenarioWorld(scenario);
  scenario.steps.slice(0, steps).forEach((s, i) => world.applyStep(s, `steps[${i}]`));
  return world.snapshot();
}
