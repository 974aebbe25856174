// Runs a program to completion and collects its output, without a shell. The agent's kernel tools
// and PowerShell go through here: execa did the same job but cost the agent ~20 MiB of resident
// memory on every node for features it never used (docs/decisions.md, "A lean agent").
import { spawn } from 'node:child_process';

export interface ProcessResult { stdout: string; stderr: string; exitCode: number }

export interface RunOptions {
  input?: string;
  env?: NodeJS.ProcessEnv;
  /** Kill after this long (SIGKILL); the result then carries exit code 1 unless the program exited first. */
  timeoutMs?: number;
}

/** Never rejects for the program's own failure: a start failure or a signal is a non-zero exit code with the reason in stderr. */
export function runProcess(file: string, args: string[], opts: RunOptions = {}): Promise<ProcessResult> {
  return new Promise((resolve) => {
    const child = spawn(file, args, { env: opts.env ? { ...process.env, ...opts.env } : process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let failure = '';
    const timer = opts.timeoutMs ? setTimeout(() => { failure = `timed out after ${opts.timeoutMs} ms`; child.kill('SIGKILL'); }, opts.timeoutMs) : undefined;
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => { failure ||= e.message; });
    // A program that exits before reading all its input must not crash us with EPIPE.
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.input ?? '');
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const stderr = Buffer.concat(err).toString('utf8');
      const reason = failure || (signal ? `killed by ${signal}` : '');
      resolve({ stdout: Buffer.concat(out).toString('utf8'), stderr: reason ? `${stderr}${stderr && !stderr.endsWith('\n') ? '\n' : ''}${reason}` : stderr, exitCode: code ?? 1 });
    });
  });
}
