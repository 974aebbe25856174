// The process groups of a process's descendants, read from /proc. The agent runs its kernel tools
// through a shell in a process group of its own (agent/dataplane/linux/shell-runner.ts), so killing
// the agent's group alone would leave a tool it started running on, and writing to the kernel after
// a restarted agent has read it. A container kill ends every process in the container: the fault
// tests do the same.
import { readdirSync, readFileSync } from 'node:fs';

/** Parent pid and process group of every live process. */
function processTable(): Map<number, { ppid: number; pgid: number }> {
  const table = new Map<number, { ppid: number; pgid: number }>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // The command name (field 2) may hold spaces and parentheses: fields after its last ")".
      const [, ppid, pgid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      table.set(Number(entry), { ppid: Number(ppid), pgid: Number(pgid) });
    } catch {
      // Gone while we looked.
    }
  }
  return table;
}

/** Every process group a descendant of `pid` belongs to (the process's own group included). */
export function descendantGroups(pid: number): number[] {
  const table = processTable();
  const children = new Map<number, number[]>();
  for (const [p, { ppid }] of table) children.set(ppid, [...(children.get(ppid) ?? []), p]);
  const groups = new Set<number>([table.get(pid)?.pgid ?? pid]);
  const todo = [...(children.get(pid) ?? [])];
  while (todo.length) {
    const p = todo.pop()!;
    groups.add(table.get(p)!.pgid);
    todo.push(...(children.get(p) ?? []));
  }
  return [...groups];
}
