// Compiled specs of a scenario file after a given step, for dataplane tests.
import type { CompiledPolicySetSpec } from '../../crds/types.ts';
import { loadScenario } from '../../matrix/scenario.ts';
import { ScenarioWorld } from '../../matrix/world.ts';
import { PolicyCompiler } from '../../operator/compile/compiler.ts';

export function scenarioSpecs(file: string, steps: number): Map<string, CompiledPolicySetSpec> {
  const scenario = loadScenario(file);
  const world = new ScenarioWorld(scenario);
  scenario.steps.slice(0, steps).forEach((s, i) => world.applyStep(s, `steps[${i}]`));
  return PolicyCompiler.compile(world.snapshot());
}
