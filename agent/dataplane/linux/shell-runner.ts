// Runs the kernel tools through one long-lived shell instead of one process spawn per call. A spawn
// forks the agent (~180 MiB of memory to map) and blocks its event loop until the child has
// exec'd: 2 ms a call on an idle node, up to 10 ms on a busy one (CPU profile of the sandbox's
// agents). The shell is small, so its fork is cheap; started under a prefix such as
// `ip netns exec NS`, it also spares every call that wrapper.
// Calls run one at a time. The shell's stdin carries commands; a call's input travels on a second
// pipe (fd 3), read by `head -c <bytes>` so the pipe stays open for the next call (no file: the
// agent's /tmp is a small memory volume, and a 1M-entry ipset payload is ~45 MB). The end of a call
// is marked on stdout and stderr with a line no tool prints.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { Readable, Writable } from 'node:stream';
import type { KernelRunner, RunResult } from './runner.ts';

interface Shell {
  child: ChildProcess;
  commands: Writable;
  input: Writable;
  stdout: Readable;
  stderr: Readable;
}

interface Pending {
  shell: Shell;
  outEnd: RegExp;
  errEnd: RegExp;
  resolve: (r: RunResult) => void;
  reject: (e: Error) => void;
}

export class ShellRunner implements KernelRunner {
  private readonly prefix: string[];
  private readonly nonce = randomBytes(8).toString('hex');
  private shell?: Shell;
  private calls = 0;
  private queue: Promise<unknown> = Promise.resolve();
  private pending?: Pending;
  private out = new Collected();
  private err = new Collected();

  constructor(prefix: string[] = []) {
    this.prefix = prefix;
  }

  run(command: string, args: string[], input?: string): Promise<RunResult> {
    const result = this.queue.then(() => this.runNow(command, args, input));
    this.queue = result.catch(() => undefined);
    return result;
  }

  /** Ends the shell (it also ends by itself when this process exits and its stdin closes). */
  close(): void {
    this.shell?.commands.end();
    this.shell?.input.end();
    this.shell = undefined;
  }

  private runNow(command: string, args: string[], input?: string): Promise<RunResult> {
    const shell = this.start();
    const data = input === undefined ? undefined : Buffer.from(input);
    const from = data ? `head -c ${data.length} <&3 | ` : '';
    const mark = `__FENCER_END_${this.nonce}_${++this.calls}__`;
    const line = `${from}${[command, ...args].map(quote).join(' ')}${data ? '' : ' </dev/null'}; printf '\\n%s %d\\n' ${mark} "$?"; printf '\\n%s\\n' ${mark} >&2\n`;
    return new Promise<RunResult>((resolve, reject) => {
      this.pending = { shell, outEnd: new RegExp(`\\n${mark} (\\d+)\\n`), errEnd: new RegExp(`\\n${mark}\\n`), resolve, reject };
      this.hold(true);
      shell.commands.write(line);
      if (data?.length) shell.input.write(data);
    });
  }

  private start(): Shell {
    if (this.shell) return this.shell;
    const [file, ...rest] = [...this.prefix, 'sh'];
    const child = spawn(file, rest, { stdio: ['pipe', 'pipe', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
    const [commands, stdout, stderr, input] = child.stdio as unknown as [Writable, Readable, Readable, Writable];
    const shell: Shell = { child, commands, input, stdout, stderr };
    this.out = new Collected();
    this.err = new Collected();
    stdout.setEncoding('utf8');
    stderr.setEncoding('utf8');
    stdout.on('data', (chunk: string) => {
      this.out.add(chunk);
      this.settle();
    });
    stderr.on('data', (chunk: string) => {
      this.err.add(chunk);
      this.settle();
    });
    // A write to a shell that just died: its 'exit' reports it.
    commands.on('error', () => undefined);
    input.on('error', () => undefined);
    child.on('error', (e) => this.lost(shell, e.message));
    child.on('exit', (code, signal) => {
      this.shell = this.shell === shell ? undefined : this.shell;
      // What it said last may still be in the pipe: wait for the streams to close, but not for long
      // (a grandchild can hold them open).
      const lost = () => this.lost(shell, `exit ${code ?? signal}`);
      const wait = setTimeout(lost, 100);
      child.once('close', () => {
        clearTimeout(wait);
        lost();
      });
    });
    this.shell = shell;
    this.hold(false);
    return shell;
  }

  /** Finishes the pending call once both streams carry its end mark. */
  private settle(): void {
    const p = this.pending;
    if (!p) return;
    const status = this.out.find(p.outEnd);
    const end = this.err.find(p.errEnd);
    if (!status || !end) return;
    const result = { stdout: this.out.take(status), stderr: this.err.take(end), exitCode: Number(status.match[1]) };
    this.pending = undefined;
    this.hold(false);
    p.resolve(result);
  }

  private lost(shell: Shell, why: string): void {
    if (this.shell === shell) this.shell = undefined;
    const p = this.pending;
    // A call already sent to a newer shell is not this shell's to fail.
    if (!p || p.shell !== shell) return;
    this.pending = undefined;
    const said = this.err.text().trim().split('\n').slice(-3).join(' / ');
    p.reject(new Error(`the shell running kernel tools ended (${why})${said ? `: ${said}` : ''}`));
  }

  /** An idle shell must not keep this process alive; a call in flight must. */
  private hold(busy: boolean): void {
    const s = this.shell;
    if (!s) return;
    // The pipes are sockets at run time; their types do not say so.
    for (const handle of [s.child, s.commands, s.input, s.stdout, s.stderr] as unknown as Array<{ ref(): void; unref(): void }>) {
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
