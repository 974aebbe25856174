// `fencer matrix FILE...`: exit 0 when every grid matches, 1 on a mismatch, 2 on an invalid file.
import type { Command } from 'commander';
import { runScenario, type MatrixMode } from '../matrix/run.ts';
import { loadScenario, ScenarioError } from '../matrix/scenario.ts';

export function matrixCommand(files: string[], mode: MatrixMode): number {
  let invalid = false;
  let failed = false;
  for (const file of files) {
    try {
      const outcome = runScenario(loadScenario(file), mode, (l) => console.log(l));
      if (!outcome.passed) failed = true;
    } catch (e) {
      if (!(e instanceof ScenarioError)) throw e;
      console.error(`invalid scenario: ${e.message}`);
      invalid = true;
    }
  }
  const summary = `${files.length} file(s): ${invalid ? 'invalid input' : failed ? 'grids differ' : 'all grids match'}`;
  (invalid || failed ? console.error : console.log)(summary);
  return invalid ? 2 : failed ? 1 : 0;
}

export function registerMatrixCommand(program: Command): void {
  program.command('matrix')
    .description('run scenario files on the compiled rules (or the reference semantics with --oracle)')
    .argument('<files...>', 'scenario YAML files')
    .option('--oracle', 'evaluate the policies directly with the reference semantics')
    .action((files: string[], opts: { oracle?: boolean }) => { process.exitCode = matrixCommand(files, opts.oracle ? 'oracle' : 'compiled'); });
}
