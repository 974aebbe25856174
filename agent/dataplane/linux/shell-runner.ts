// Runs the kernel tools through one long-lived shell instead of one process spawn per call. A spawn
// forks the agent (~180 MiB of memory to map) and blocks its event loop until the child has
// exec'd: 2 ms a call on an idle node, up to 10 ms on a busy one (CPU profile of the sandbox's
// agents). The shell is small, so its fork is cheap; started under a prefix such as
// `ip netns exec NS`, it also spares every call that wrapper.
// Calls run one at a time. The shell's stdin carries commands; a call's input travels on a second
// pipe (fd 3), read by `head -c <bytes>` so the pipe stays open for the next call (no file: the
// agent's /tmp is a small memory volume, and a 1M-entry ipset payload is ~45 MB). Whatever the tool
// leaves unread is drained, so the next call starts at its own first byte. The end of a call is
// marked on stdout and stderr with a line no tool prints.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { inNamedNetns } from './netns.ts';
import type { Readable, Writable } from 'node:stream';
import type { KernelRunner, RunResult } from './runner.ts';

interface Shell {
  child: ChildProcess;
  commands: Writable;
  input: Writable;
  out: Collected;
  err: Collected;
  handles: Array<{ ref(): void; unref(): void }>;
}

interface Pending {
  shell: Shell;
  outEnd: RegExp;
  errEnd: RegExp;
  /** Where each end mark was found, once it was (the windows move on as data arrives). */
  status?: ReturnType<Collected['find']>;
  end?: ReturnType<Collected['find']>;
  resolve: (r: RunResult) => void;
  reject: (e: Error) => void;
}

/** Exit code of a call whose input could not be read (the tool then saw none, and may have said 0). */
export const INPUT_FAILED_EXIT = 125;

export interface ShellRunnerOptions {
  /**
   * The network namespace the prefix enters: a namespace deleted and made again under the same name
   * is a new one, and the shell, still inside the old one, is replaced before the next call.
   */
  netns?: string;
}

export class ShellRunner implements KernelRunner {
  private readonly prefix: string[];
  private readonly netns?: string;
  private readonly nonce = randomBytes(8).toString('hex');
  private shell?: Shell;
  private calls = 0;
  private queue: Promise<unknown> = Promise.resolve();
  private pending?: Pending;
  private closed = false;

  constructor(prefix: string[] = [], opts: ShellRunnerOptions = {}) {
    this.prefix = prefix;
    this.netns = opts.netns;
  }

  run(command: string, args: string[], input?: string): Promise<RunResult> {
    if (this.closed) return Promise.reject(new Error('the kernel tool runner is closed'));
    const result = this.queue.then(() => this.runNow(command, args, input));
    this.queue = result.catch(() => undefined);
    return result;
  }

  /** Lets calls already made finish, then ends the shell; later calls are refused. */
  async close(): Promise<void> {
    this.closed = true;
    await this.queue;
    const s = this.shell;
    this.shell = undefined;
    s?.commands.end();
    s?.input.end();
  }

  private runNow(command: string, args: string[], input?: string): Promise<RunResult> {
    const shell = this.start();
    const data = input === undefined ? undefined : Buffer.from(input);
    const tool = [command, ...args].map(quote).join(' ');
    const failed = `__FENCER_INPUT_FAILED_${this.nonce}__`;
    // Without input the tool reads /dev/null, never the command channel. With input, a failed read is
    // said on stderr (the pipeline's status is the tool's alone) and turned into a failed call.
    const line = data
      ? `{ head -c ${data.length} <&3 || echo ${failed} >&2; } | { ${tool}; s=$?; cat >/dev/null; exit $s; }`
      : `${tool} </dev/null`;
    const mark = `__FENCER_END_${this.nonce}_${++this.calls}__`;
    return new Promise<RunResult>((resolve, reject) => {
      const done = (r: RunResult) => {
        const at = r.stderr.indexOf(`${failed}\n`);
        if (at < 0) return resolve(r);
        const stderr = `${r.stderr.slice(0, at)}fencer: the tool's input could not be read through the shell's fd 3\n${r.stderr.slice(at + failed.length + 1)}`;
        resolve({ ...r, stderr, exitCode: r.exitCode || INPUT_FAILED_EXIT });
      };
      this.pending = { shell, outEnd: new RegExp(`\\n${mark} (\\d+)\\n`), errEnd: new RegExp(`\\n${mark}\\n`), resolve: done, reject };
      this.hold(shell, true);
      shell.commands.write(`${line}; printf '\\n%s %d\\n' ${mark} "$?"; printf '\\n%s\\n' ${mark} >&2\n`);
      if (data?.length) shell.input.write(data);
    });
  }

  private start(): Shell {
    if (this.shell && this.sameNetns(this.shell)) return this.shell;
    if (this.shell) this.abandon(this.shell);
    const [file, ...rest] = [...this.prefix, 'sh'];
    // Its own process group, so that a lost shell's tools can be ended with it.
    const child = spawn(file, rest, { stdio: ['pipe', 'pipe', 'pipe', 'pipe'], detached: true, env: { ...process.env, LC_ALL: 'C' } });
    const [commands, stdout, stderr, input] = child.stdio as unknown as [Writable, Readable, Readable, Writable];
    const shell: Shell = { child, commands, input, out: new Collected(), err: new Collected(), handles: [child, commands, input, stdout, stderr] as unknown as Shell['handles'] };
    stdout.setEncoding('utf8');
    stderr.setEncoding('utf8');
    // Each shell has its own buffers: a lost shell's late output never reaches another's calls.
    stdout.on('data', (chunk: string) => {
      shell.out.add(chunk);
      this.settle(shell);
    });
    stderr.on('data', (chunk: string) => {
      shell.err.add(chunk);
      this.settle(shell);
    });
    // A write to a shell that just died: its 'exit' reports it.
    commands.on('error', () => undefined);
    input.on('error', () => undefined);
    child.on('error', (e) => this.lost(shell, e.message));
    child.on('exit', (code, signal) => {
      // What it said last may still be in the pipe: wait for the streams to close, but not for long
      // (a tool it started can hold them open).
      const lost = () => this.lost(shell, `exit ${code ?? signal}`);
      const wait = setTimeout(lost, 100);
      child.once('close', () => {
        clearTimeout(wait);
        lost();
      });
    });
    this.shell = shell;
    this.hold(shell, false);
    return shell;
  }

  private sameNetns(shell: Shell): boolean {
    return inNamedNetns(shell.child.pid, this.netns);
  }

  /** Finishes the pending call once both of its shell's streams carry its end mark. */
  private settle(shell: Shell): void {
    const p = this.pending;
    if (!p || p.shell !== shell) return;
    const status = (p.status ??= shell.out.find(p.outEnd));
    const end = (p.end ??= shell.err.find(p.errEnd));
    if (!status || !end) return;
    const result = { stdout: shell.out.take(status), stderr: shell.err.take(end), exitCode: Number(status.match[1]) };
    this.pending = undefined;
    this.hold(shell, false);
    p.resolve(result);
  }

  private lost(shell: Shell, why: string): void {
    this.abandon(shell);
    const p = this.pending;
    // A call already sent to a newer shell is not this shell's to fail.
    if (!p || p.shell !== shell) return;
    this.pending = undefined;
    const said = shell.err.text().trim().split('\n').slice(-3).join(' / ');
    p.reject(new Error(`the shell running kernel tools ended (${why})${said ? `: ${said}` : ''}`));
  }

  /** Ends a shell that is no longer used, and any tool it left running; it keeps nothing alive. */
  private abandon(shell: Shell): void {
    if (this.shell === shell) this.shell = undefined;
    try {
      if (shell.child.pid !== undefined) process.kill(-shell.child.pid, 'SIGKILL');
    } catch { /* already gone */ }
    this.hold(shell, false);
  }

  /** An idle shell must not keep this process alive; a call in flight must. */
  private hold(shell: Shell, busy: boolean): void {
    for (const handle of shell.handles) {
      if (busy) handle.ref();
      else handle.unref();
    }
  }
}

/** The last characters of a stream kept next to each new chunk, so that a mark split across two is found. */
const OVERLAP = 128;

/**
 * A stream's text since the last call ended, as chunks: searched only where an end mark can have
 * completed (a growing string searched whole each time made a 5 MB output cost 120 ms, not 10).
 */
class Collected {
  private chunks: string[] = [];
  private length = 0;
  private window = '';
  private windowAt = 0;

  add(chunk: string): void {
    const keep = this.window.slice(-OVERLAP);
    this.windowAt = this.length - keep.length;
    this.window = keep + chunk;
    this.chunks.push(chunk);
    this.length += chunk.length;
  }

  find(end: RegExp): { at: number; to: number; match: RegExpExecArray } | undefined {
    const match = end.exec(this.window);
    return match ? { at: this.windowAt + match.index, to: this.windowAt + match.index + match[0].length, match } : undefined;
  }

  text(): string {
    return this.chunks.join('');
  }

  /** The text before the mark; what follows it stays for the next call. */
  take(found: { at: number; to: number }): string {
    const text = this.chunks.join('');
    const rest = text.slice(found.to);
    this.chunks = rest ? [rest] : [];
    this.length = rest.length;
    this.window = rest;
    this.windowAt = 0;
    return text.slice(0, found.at);
  }
}

function quote(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`;
}
