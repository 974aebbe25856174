// The one door to the kernel tools. Everything the agent runs goes through a KernelRunner, so tests
// can inject failures and the sandbox can aim an agent at a network namespace with a prefix.
import { runProcess } from '../../../runtime/run-process.ts';

export interface RunResult { stdout: string; stderr: string; exitCode: number }

export interface KernelRunner {
  run(command: string, args: string[], input?: string): Promise<RunResult>;
  /** Releases what the runner keeps between calls (a helper process) once the calls made are done. */
  close?(): Promise<void>;
}

export class KernelToolError extends Error {
  readonly command: string;
  readonly result: RunResult;
  constructor(command: string, args: string[], result: RunResult) {
    super(`${command} ${args.join(' ')} failed (exit ${result.exitCode}): ${result.stderr.trim().split('\n').slice(0, 3).join(' / ') || 'no output'}`);
    this.command = command;
    this.result = result;
  }
}

/** Runs tools directly, or under a prefix such as ['ip', 'netns', 'exec', 'node-1']. */
export class ExecRunner implements KernelRunner {
  private readonly prefix: string[];
  constructor(prefix: string[] = []) {
    this.prefix = prefix;
  }

  async run(command: string, args: string[], input?: string): Promise<RunResult> {
    const [file, ...rest] = [...this.prefix, command, ...args];
    return runProcess(file, rest, { input, env: { LC_ALL: 'C' } });
  }
}

export async function runChecked(runner: KernelRunner, command: string, args: string[], input?: string): Promise<string> {
  const r = await runner.run(command, args, input);
  if (r.exitCode !== 0) throw new KernelToolError(command, args, r);
  return r.stdout;
}
