// Member-only changes through one long-lived `nft -i` instead of an `nft -f` process each. An nft
// process that committed a transaction deleting anything waits, as it closes its netlink socket,
// for the kernel to free what was deleted: 10–25 ms a call (strace: the close), where the commit
// itself takes well under 1 ms. Kept open, the socket never closes, so a pod leaving a set costs
// what a pod joining one does (decisions.md 14).
// - One line is one transaction: nft -i hands each line to the kernel as one batch, all of it or
//   nothing. The line goes to nft's stdin in one write of at most PIPE_BUF bytes, which the kernel
//   never splits: an agent killed mid-write leaves the whole line or none of it, never a prefix
//   (a prefix ending at a `;` would commit the deletes of a change without its adds).
// - A line's end is found by a command that prints a known text and changes nothing
//   (`describe tcp dport`); what nft printed before it (stderr is sent into stdout, so in order) is
//   the line's error. A successful add or delete prints nothing.
// - Anything unexpected (no answer in time, the process gone) ends the session; the caller falls
//   back to `nft -f`, and the next change starts a new session.
import { spawn, type ChildProcess } from 'node:child_process';
import { inNamedNetns } from '../linux/netns.ts';
import { TABLE_REF } from './names.ts';

/** Bytes of one write that the kernel keeps whole on a pipe (POSIX PIPE_BUF on Linux). */
const PIPE_BUF = 4096;
const SYNC = 'describe tcp dport';
const SYNC_ANSWER = /payload expression, datatype inet_service[^\n]*\n/;

export interface ElementChange { verb: 'add' | 'delete'; set: string; elements: readonly string[] }

/** The changes as one nft line (one transaction), deletes as given first; undefined when it would not fit one atomic write. */
export function sessionLine(changes: readonly ElementChange[]): string | undefined {
  const line = changes.filter((c) => c.elements.length).map((c) => `${c.verb} element ${TABLE_REF} ${c.set} { ${c.elements.join(', ')} }`).join('; ');
  return line && Buffer.byteLength(`${line}\n${SYNC}\n`) <= PIPE_BUF ? line : undefined;
}

interface Pending { resolve: (out: string) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }

export interface NftSessionOptions {
  timeoutMs?: number;
  /**
   * The network namespace the prefix enters: one deleted and made again under the same name is a
   * new one, and a session still inside the old one would commit there; it is replaced first.
   */
  netns?: string;
}

export class NftSession {
  private readonly prefix: string[];
  private readonly timeoutMs: number;
  private readonly netns?: string;
  private child?: ChildProcess;
  private out = '';
  private pending?: Pending;
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;
  /** nft answered a command that prints nothing with text: its answers cannot be told apart; never used again. */
  private unusable?: string;

  constructor(prefix: string[] = [], opts: NftSessionOptions = {}) {
    this.prefix = prefix;
    this.timeoutMs = opts.timeoutMs ?? 5000;
    this.netns = opts.netns;
  }

  /** Commits `line` as one transaction; rejects with nft's message when the kernel refused it. */
  commit(line: string): Promise<void> {
    if (this.closed) return Promise.reject(new Error('the nft session is closed'));
    if (this.unusable) return Promise.reject(new Error(this.unusable));
    if (/[\n\r]/.test(line) || Buffer.byteLength(`${line}\n${SYNC}\n`) > PIPE_BUF) return Promise.reject(new Error('an nft session line must be one line that fits one atomic write'));
    const result = this.queue.then(() => this.ask(`${line}\n`)).then((said) => {
      if (said.trim()) throw new Error(`nft refused the change: ${said.trim().split('\n').slice(0, 3).join(' / ')}`);
    });
    this.queue = result.catch(() => undefined);
    return result;
  }

  /** The process id of the session's nft (or its `ip netns exec` wrapper), while one runs. */
  pid(): number | undefined {
    return this.child?.exitCode === null ? this.child.pid : undefined;
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.queue;
    this.end();
  }

  private async ask(text: string): Promise<string> {
    if (this.child && !inNamedNetns(this.child.pid, this.netns)) this.end();
    const child = this.child ?? (await this.start());
    return this.exchange(child, text, 'gave no answer');
  }

  /** Writes `text` and the sync command in one write; resolves with what nft printed before the sync's answer. */
  private exchange(child: ChildProcess, text: string, silence: string): Promise<string> {
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => this.fail(new Error(`nft -i ${silence} in ${this.timeoutMs} ms`)), this.timeoutMs);
      this.pending = { resolve, reject, timer };
      child.stdin!.write(`${text}${SYNC}\n`);
      this.settle();
    });
  }

  private async start(): Promise<ChildProcess> {
    const [file, ...args] = [...this.prefix, 'sh', '-c', 'exec nft -i 2>&1'];
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'ignore'], env: { ...process.env, LC_ALL: 'C' } });
    this.child = child;
    this.out = '';
    child.stdout!.setEncoding('utf8');
    // A session that ended says nothing more to the one that replaced it.
    const current = () => this.child === child;
    child.stdout!.on('data', (chunk: string) => {
      if (!current()) return;
      this.out += chunk;
      this.settle();
    });
    child.stdin!.on('error', () => undefined);
    child.on('error', (e) => current() && this.fail(e));
    child.on('exit', (code, signal) => current() && this.fail(new Error(`nft -i exited (${signal ?? code})`)));
    // Its first answer shows that the session works at all (nft present, -i supported, in the netns).
    const said = await this.exchange(child, '', 'did not start');
    // A build that prints a prompt or banner on a pipe would make every change look refused.
    if (said.trim()) {
      this.unusable = `nft -i prints "${said.trim().slice(0, 80)}" unasked: member changes use nft -f`;
      this.end();
      throw new Error(this.unusable);
    }
    return child;
  }

  private settle(): void {
    const m = SYNC_ANSWER.exec(this.out);
    if (!m || !this.pending) return;
    const said = this.out.slice(0, m.index);
    this.out = this.out.slice(m.index + m[0].length);
    const { resolve, timer } = this.pending;
    this.pending = undefined;
    clearTimeout(timer);
    resolve(said);
  }

  private fail(e: Error): void {
    const p = this.pending;
    this.pending = undefined;
    if (p) {
      clearTimeout(p.timer);
      p.reject(e);
    }
    this.end();
  }

  private end(): void {
    const child = this.child;
    this.child = undefined;
    if (!child) return;
    child.stdin?.end();
    if (child.exitCode === null) child.kill('SIGKILL');
  }
}
