// Runs scenario files in-process: compiles each step (incrementally, as the operator does) and
// evaluates the compiled rules, or asks the oracle; prints every observed grid and the differences.
import type { Flow } from '../model/cluster.ts';
import { oracleAllows } from '../oracle/oracle.ts';
import { PolicyCompiler } from '../operator/compile/compiler.ts';
import { CompiledEvaluator } from './evaluate-compiled.ts';
import { differences, formatGrid, parseGrid, sideBySide, type Grid } from './grid.ts';
import { ScenarioError, type Probe, type Scenario } from './scenario.ts';
import { ScenarioWorld, type PodInfo } from './world.ts';

export type MatrixMode = 'compiled' | 'oracle';

export interface ScenarioOutcome { passed: boolean; grids: number; mismatches: number }

export type Allows = (flow: Flow) => boolean;

export function runScenario(scenario: Scenario, mode: MatrixMode, print: (line: string) => void): ScenarioOutcome {
  const world = new ScenarioWorld(scenario);
  const compiler = new PolicyCompiler();
  compiler.recompile(world.initialChanges().flatMap((c) => [...compiler.applyChange(c)]));
  const outcome: ScenarioOutcome = { passed: true, grids: 0, mismatches: 0 };
  print(`== ${scenario.name} (${scenario.file}) [${mode === 'oracle' ? 'oracle' : 'compiled rules'}]`);
  scenario.steps.forEach((step, i) => {
    const field = `steps[${i}]`;
    const changes = world.applyStep(step, field);
    compiler.recompile(changes.flatMap((c) => [...compiler.applyChange(c)]));
    const allows: Allows = mode === 'oracle'
      ? (() => { const snapshot = world.snapshot(); return (f: Flow) => oracleAllows(snapshot, f); })()
      : (() => { const ev = new CompiledEvaluator(compiler.current().values()); return (f: Flow) => ev.allows(f); })();
    const pods = world.livePods();
    for (const probe of scenario.probes) {
      const observed = observeGrid(pods, probe, allows);
      const names = pods.map((p) => p.key);
      const expectedText = step.expect?.get(probe.text);
      const expected = expectedText === undefined ? undefined : parseGrid(expectedText, names, (reason) => { throw new ScenarioError(scenario.file, `${field}.expect.${probe.text}`, reason); });
      outcome.grids++;
      if (!reportGrid(print, `step ${i + 1} ${probe.text}`, names, observed, expected)) {
        outcome.passed = false;
        outcome.mismatches++;
      }
    }
  });
  return outcome;
}

/** Prints the observed grid, or the differences from the expected one; false on a mismatch. */
export function reportGrid(print: (line: string) => void, label: string, names: string[], observed: Grid, expected: Grid | undefined, note = ''): boolean {
  if (expected === undefined) {
    print(`${label}: observed (no expectation)${note}`);
    formatGrid(observed, names).forEach((l) => print(`  ${l}`));
    return true;
  }
  const diffs = differences(expected, observed, names);
  if (diffs.length === 0) {
    print(`${label}: ok${note}`);
    formatGrid(observed, names).forEach((l) => print(`  ${l}`));
    return true;
  }
  print(`${label}: MISMATCH in ${diffs.length} cell(s): ${diffs.map(([s, d]) => `${s}→${d}`).join(', ')}${note}`);
  sideBySide(expected, observed, names, diffs).split('\n').forEach((l) => print(`  ${l}`));
  return false;
}

export function serves(pod: PodInfo, probe: Probe): boolean {
  return pod.spec.ports.some((p) => p.port === probe.port && p.protocol === probe.protocol);
}

export function observeGrid(pods: PodInfo[], probe: Probe, allows: Allows): Grid {
  const grid: Grid = new Map();
  for (const src of pods) {
    const row = new Map<string, boolean>();
    for (const dst of pods) {
      const ok = src === dst || (serves(dst, probe) && allows({ srcIP: src.ip, dstIP: dst.ip, protocol: probe.protocol, port: probe.port }));
      row.set(dst.key, ok);
    }
    grid.set(src.key, row);
  }
  return grid;
}
