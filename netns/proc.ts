// Process trees read from /proc: what a process started that is still running.
import { readFileSync } from 'node:fs';

/** The live children of a process (none when it is gone). */
export function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}
