// The quick start's main job as a user runs it: `fencer sandbox` comes up, prints its summary, and a
// Ctrl-C (SIGINT to its process group, as a terminal sends it) leaves nothing behind: no network
// namespace, no process, no state file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { listNetns, NODE_BIN } from '../../netns/ip.ts';
import { childPids } from '../../netns/proc.ts';

const PREFIX = 'fscli';

function descendants(pid: number): number[] {
  return childPids(pid).flatMap((c) => [c, ...descendants(c)]);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('fencer sandbox: running, then Ctrl-C removes every namespace, process and its state file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fencer-sandbox-cli-'));
  const state = join(dir, 'sandbox.json');
  const child = spawn(NODE_BIN, ['cli/main.ts', 'sandbox', '--nodes', '2', '--prefix', PREFIX], {
    detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, FENCER_SANDBOX_STATE: state },
  });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d));
  child.stderr.on('data', (d: Buffer) => (output += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code, signal) => resolve(code ?? (signal === 'SIGINT' ? 130 : null))));
  let helpers: number[] = [];
  try {
    const deadline = Date.now() + 240_000;
    while (!output.includes('Ctrl-C stops it') && Date.now() < deadline && child.exitCode === null) await new Promise((r) => setTimeout(r, 250));
    assert.match(output, /The sandbox is running\./, output);
    assert.equal(JSON.parse(readFileSync(state, 'utf8')).pid, child.pid);
    assert.equal((await listNetns()).filter((n) => n.startsWith(`${PREFIX}-`)).length >= 2, true, 'node namespaces exist while it runs');
    helpers = descendants(child.pid!);
    assert.ok(helpers.length > 0, 'it runs etcd, kube-apiserver and the agents');
    process.kill(-child.pid!, 'SIGINT');
    const code = await Promise.race([exited, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 60_000))]);
    assert.ok(code === 0 || code === 130, `exit ${code}\n${output.slice(-2000)}`);
    assert.ok(!existsSync(state), 'the state file is removed');
    assert.deepEqual((await listNetns()).filter((n) => n.startsWith(`${PREFIX}-`)), []);
    // Agents' watchdogs end them within a second of their parent; give them that.
    for (let i = 0; i < 40 && helpers.some(alive); i++) await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(helpers.filter(alive), [], 'no process it started is left');
  } finally {
    if (child.exitCode === null) process.kill(-child.pid!, 'SIGKILL');
    for (const pid of helpers.filter(alive)) process.kill(pid, 'SIGKILL');
    // After a failure: what a crashed sandbox leaves is what --down removes.
    spawnSync(NODE_BIN, ['cli/main.ts', 'sandbox', '--down', '--prefix', PREFIX], { stdio: 'ignore', env: { ...process.env, FENCER_SANDBOX_STATE: state } });
    rmSync(dir, { recursive: true, force: true });
  }
});
