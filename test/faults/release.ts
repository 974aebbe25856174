// A previous release of Fencer, materialized from git into a temporary directory, so a test can run
// its `fencer agent` / `fencer operator` processes next to (or instead of) this tree's: the rolling
// upgrade test (test/integration/upgrade.test.ts). The release runs on this tree's node_modules
// (symlinked) when its package.json and package-lock.json are this tree's; otherwise it gets its own
// `npm ci`. Its processes run in their own process groups, are killed when the test process exits
// or is told to stop (netns/lifecycle.ts), and by a watchdog if the test process dies by SIGKILL.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { freePort } from '../../netns/free-port.ts';
import { track, untrack, type SyncDestroyable } from '../../netns/lifecycle.ts';
import type { AgentProcessOptions, FencerProcess, OperatorProcessOptions } from './processes.ts';

const here = fileURLToPath(new URL('../../', import.meta.url));
/** This tree's Node 24 runs the release too (the `node` dev dependency; same version when the lockfiles agree). */
const NODE = `${here}node_modules/node/bin/node`;

const WATCHDOG = `
while kill -0 "$1" 2>/dev/null; do kill -0 "$2" 2>/dev/null || exit 0; sleep 1; done
kill -KILL -- "-$2" 2>/dev/null
`;

export interface Release {
  /** The commit as asked for, and its full id. */
  readonly ref: string;
  readonly commit: string;
  /** The release's tree (cli/main.ts, crds/, operator/, agent/ …). */
  readonly root: string;
  /** How its dependencies were provided. */
  readonly dependencies: 'symlinked' | 'npm ci';
  /** `fencer agent --netns …` of the release, with the options test/faults/processes.ts takes. */
  spawnAgent(o: AgentProcessOptions): Promise<FencerProcess>;
  /** `fencer operator …` of the release. */
  spawnOperator(o: OperatorProcessOptions): Promise<FencerProcess>;
  /** `fencer …` of the release, any arguments; resolves with the exit code and output. */
  run(args: string[]): Promise<{ code: number; output: string }>;
  /** Imports a module of the release (e.g. its compiler), by path inside its tree. */
  import<T>(path: string): Promise<T>;
  /** Kills every process of the release still running and removes the tree. Idempotent. */
  remove(): Promise<void>;
}

function git(args: string[], input?: Buffer): Buffer {
  const r = spawnSync('git', ['-C', here, ...args], { input, maxBuffer: 512 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`git ${args.join(' ')}: ${String(r.stderr).trim()}`);
  return r.stdout;
}

/** Writes the tree of `ref` (a commit of this repository) into a temporary directory. */
export function materializeRelease(ref: string): Release {
  const commit = String(git(['rev-parse', '--verify', `${ref}^{commit}`])).trim();
  const root = mkdtempSync(join(tmpdir(), `fencer-release-${commit.slice(0, 7)}-`));
  const processes = new Set<SpawnedTree>();
  let removed = false;
  const guard: SyncDestroyable = {
    destroySync() {
      for (const p of processes) p.destroySync();
      rmSync(root, { recursive: true, force: true });
    },
  };
  track(guard);
  let dependencies: Release['dependencies'];
  try {
    const tar = spawnSync('tar', ['-x', '-C', root], { input: git(['archive', '--format=tar', commit]), maxBuffer: 16 * 1024 * 1024 });
    if (tar.status !== 0) throw new Error(`tar -x: ${String(tar.stderr).trim()}`);
    const same = ['package.json', 'package-lock.json'].every((f) => existsSync(join(root, f)) && readFileSync(join(root, f), 'utf8') === readFileSync(join(here, f), 'utf8'));
    if (same) {
      symlinkSync(join(here, 'node_modules'), join(root, 'node_modules'), 'dir');
      dependencies = 'symlinked';
    } else {
      const npm = spawnSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: root, encoding: 'utf8' });
      if (npm.status !== 0) throw new Error(`the release's dependencies differ from this tree's and npm ci in ${root} failed: ${npm.stderr}`);
      dependencies = 'npm ci';
    }
  } catch (e) {
    guard.destroySync();
    untrack(guard);
    throw e;
  }
  const main = join(root, 'cli/main.ts');
  // The release's own Node when it brought its own dependencies.
  const node = dependencies === 'symlinked' ? NODE : join(root, 'node_modules/node/bin/node');
  const spawnTree = async (args: string[], opts: { logFile: string; metricsPort: number; env?: NodeJS.ProcessEnv }) => {
    if (removed) throw new Error(`release ${ref} was removed`);
    const p = new SpawnedTree(node, main, args, opts);
    processes.add(p);
    void p.exited.then(() => processes.delete(p));
    return p;
  };
  return {
    ref,
    commit,
    root,
    dependencies,
    async spawnAgent(o) {
      const metricsPort = o.metricsPort ?? (await freePort());
      return spawnTree([
        'agent', '--node', o.node, '--netns', o.netns, '--kubeconfig', o.kubeconfig,
        '--metrics-port', String(metricsPort), '--metrics-host', '127.0.0.1', '--drift-seconds', String(o.driftSeconds ?? 0), '--hook-position', 'first',
      ], { logFile: o.logFile, metricsPort, env: { ...(o.path ? { PATH: o.path } : {}), FENCER_LOG_LEVEL: 'info' } });
    },
    async spawnOperator(o) {
      const metricsPort = o.metricsPort ?? (await freePort());
      return spawnTree([
        'operator', '--kubeconfig', o.kubeconfig, '--identity', o.identity, '--namespace', o.namespace, '--lease-name', o.leaseName,
        '--metrics-port', String(metricsPort), '--metrics-host', '127.0.0.1', '--coalesce-ms', '50',
      ], { logFile: o.logFile, metricsPort });
    },
    run(args) {
      return new Promise((resolve) => {
        const child = spawn(node, [main, ...args], { stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 });
        let output = '';
        child.stdout.on('data', (d) => (output += String(d)));
        child.stderr.on('data', (d) => (output += String(d)));
        child.once('error', (e) => resolve({ code: 127, output: e.message }));
        child.once('close', (code) => resolve({ code: code ?? 128, output }));
      });
    },
    import: (path) => import(pathToFileURL(join(root, path)).href),
    async remove() {
      if (removed) return;
      removed = true;
      await Promise.all([...processes].map((p) => p.kill('SIGKILL')));
      rmSync(root, { recursive: true, force: true });
      untrack(guard);
    },
  };
}

/** One process of a tree, in its own process group (a kill takes its kernel tools with it). */
class SpawnedTree implements FencerProcess, SyncDestroyable {
  readonly pid: number;
  readonly logFile: string;
  readonly metricsPort: number;
  readonly exited: Promise<number>;
  private done = false;
  private readonly watchdog: ChildProcess;

  constructor(node: string, main: string, args: string[], opts: { logFile: string; metricsPort: number; env?: NodeJS.ProcessEnv }) {
    this.logFile = opts.logFile;
    this.metricsPort = opts.metricsPort;
    const out = openSync(opts.logFile, 'a');
    let child: ChildProcess;
    try {
      child = spawn(node, [main, ...args], { detached: true, stdio: ['ignore', out, out], env: { ...process.env, ...opts.env } });
    } finally {
      closeSync(out);
    }
    child.once('error', () => undefined);
    if (child.pid === undefined) throw new Error(`could not start ${main} ${args[0]}`);
    this.pid = child.pid;
    // bash, not sh: dash's kill cannot signal a process group.
    this.watchdog = spawn('bash', ['-c', WATCHDOG, 'bash', String(process.pid), String(this.pid)], { detached: true, stdio: 'ignore' });
    this.watchdog.unref();
    track(this);
    this.exited = new Promise<number>((resolve) => child.once('exit', (code, signal) => {
      this.done = true;
      // The group may still hold children (a tool the process was running): they go too.
      this.signal('SIGKILL');
      this.watchdog.kill('SIGKILL');
      untrack(this);
      resolve(code ?? 128 + (signal ? ({ SIGKILL: 9, SIGTERM: 15, SIGINT: 2 } as Record<string, number>)[signal] ?? 0 : 0));
    }));
  }

  alive(): boolean {
    return !this.done;
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<number> {
    this.signal(signal);
    return this.exited;
  }

  async stop(graceMs = 5000): Promise<number> {
    this.signal('SIGTERM');
    const timer = setTimeout(() => this.signal('SIGKILL'), graceMs);
    const code = await this.exited;
    clearTimeout(timer);
    return code;
  }

  log(): string {
    return readFileSync(this.logFile, 'utf8');
  }

  async metrics(path: string): Promise<string> {
    const res = await fetch(`http://127.0.0.1:${this.metricsPort}${path}`, { signal: AbortSignal.timeout(3000) });
    return res.text();
  }

  destroySync(): void {
    this.signal('SIGKILL');
    this.watchdog.kill('SIGKILL');
  }

  private signal(signal: NodeJS.Signals): void {
    try { process.kill(-this.pid, signal); } catch { /* gone */ }
  }
}
