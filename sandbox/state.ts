// A running sandbox leaves a small state file so that `fencer sandbox matrix` can probe it from
// another shell and `fencer sandbox --down` can clean up after a crash.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { NODE_BIN } from '../netns/ip.ts';

export const STATE_FILE = process.env.FENCER_SANDBOX_STATE ?? '/run/fencer/sandbox.json';
const PROBE = fileURLToPath(new URL('../netns/probe.ts', import.meta.url));

export interface SandboxState {
  pid: number;
  prefix: string;
  kubeconfig: string;
  kubectl: string;
  pods: Array<{ key: string; netns: string; ip: string; tcp: number[]; udp: number[] }>;
}

export function writeState(state: SandboxState): void {
  mkdirSync(STATE_FILE.replace(/\/[^/]+$/, ''), { recursive: true });
  writeFileSync(STATE_FILE, JSON.stringify(state, null, 2));
}

export function readState(): SandboxState | undefined {
  return existsSync(STATE_FILE) ? (JSON.parse(readFileSync(STATE_FILE, 'utf8')) as SandboxState) : undefined;
}

export function removeState(): void {
  rmSync(STATE_FILE, { force: true });
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Probes from one pod's namespace to every target, in parallel, with one process. */
export async function probeFrom(netns: string, targets: Array<{ ip: string; protocol: 'TCP' | 'UDP'; port: number }>, timeoutMs = 800): Promise<boolean[]> {
  const r = await execa('ip', ['netns', 'exec', netns, NODE_BIN, PROBE, JSON.stringify({ timeoutMs, targets })], { reject: false });
  if (r.exitCode !== 0) throw new Error(`probe from ${netns} failed: ${String(r.stderr).trim()}`);
  return JSON.parse(String(r.stdout)) as boolean[];
}
