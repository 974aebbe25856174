// Thin wrappers over iproute2 for the netns harness: run `ip`, list / empty / delete namespaces,
// each in an async form and a sync form (the sync form is for process 'exit' handlers).
import { execa } from 'execa';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** A Node binary that can run .ts files (>= 23.6 strips types by default). */
export const NODE_BIN: string = (() => {
  const major = Number(process.versions.node.split('.')[0]);
  if (major >= 24) return process.execPath;
  const repoNode = fileURLToPath(new URL('../node_modules/.bin/node', import.meta.url));
  if (existsSync(repoNode)) return repoNode;
  throw new Error(`netns harness needs Node >= 24 (running ${process.version}, no node_modules/.bin/node)`);
})();

export async function ip(args: string[]): Promise<string> {
  const r = await execa('ip', args, { reject: false, env: { LC_ALL: 'C' } });
  if (r.exitCode !== 0) throw new Error(`ip ${args.join(' ')} failed (exit ${r.exitCode}): ${String(r.stderr).trim()}`);
  return String(r.stdout);
}

/** Runs a command inside a named netns; never throws on a non-zero exit. */
export async function nsExec(netns: string, cmd: string[]): Promise<{ stdout: string; stderr: string; exitCode: number }> {
  const r = await execa('ip', ['netns', 'exec', netns, ...cmd], { reject: false, env: { LC_ALL: 'C', PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' } });
  return { stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? ''), exitCode: r.exitCode ?? 1 };
}

function parseNetnsList(out: string): string[] {
  // Lines look like "name (id: 3)" or just "name".
  return out.split('\n').map((l) => l.trim().split(/\s+/)[0]).filter((n) => n.length > 0);
}

export async function listNetns(): Promise<string[]> {
  return parseNetnsList(await ip(['netns', 'list']));
}

export function listNetnsSync(): string[] {
  return parseNetnsList(execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }));
}

function parsePids(out: string): number[] {
  return out.split('\n').map((l) => Number(l.trim())).filter((n) => Number.isInteger(n) && n > 0);
}

function killAll(pids: number[]): void {
  for (const pid of pids) {
    try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
  }
}

/**
 * Kills every process living in the netns, waits (briefly) for them to go so the namespace and its
 * links are really freed, then deletes the name. Missing namespaces are fine.
 */
export async function removeNetns(name: string): Promise<void> {
  for (let i = 0; i < 50; i++) {
    const r = await execa('ip', ['netns', 'pids', name], { reject: false });
    if (r.exitCode !== 0) break; // no such netns
    const pids = parsePids(String(r.stdout));
    if (pids.length === 0) break;
    killAll(pids);
    await new Promise((res) => setTimeout(res, 20));
  }
  await execa('ip', ['netns', 'delete', name], { reject: false });
}

export function removeNetnsSync(name: string): void {
  try {
    killAll(parsePids(execFileSync('ip', ['netns', 'pids', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })));
  } catch { /* no such netns */ }
  try { execFileSync('ip', ['netns', 'delete', name], { stdio: 'ignore' }); } catch { /* already gone */ }
}
