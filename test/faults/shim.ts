// A PATH shim in front of the kernel tools an agent runs (ipset, iptables-*-restore, iptables-*,
// iptables-*-save). Every call is logged with a millisecond timestamp; a control file per tool makes
// chosen subcommands wait or fail, and can be changed while the agent runs:
//
//   const shim = createShim();                 // PATH=<shim.dir>:$PATH for the agent process
//   shim.set('ipset', { action: 'fail', match: 'restore', message: 'injected' });
//   shim.set('iptables-nft-restore', { action: 'delay', ms: 800 });
//   shim.clear('ipset');
//   shim.calls()                               // [{ at, tool, args }]
//
// `ip netns exec NS ipset …` looks the tool up in PATH, so the shim also works for agents aimed at a
// network namespace.
import { appendFileSync, chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const SHIMMED_TOOLS = [
  'ipset',
  'iptables-nft', 'iptables-legacy',
  'iptables-nft-restore', 'iptables-legacy-restore',
  'iptables-nft-save', 'iptables-legacy-save',
  'nft',
] as const;
export type ShimmedTool = (typeof SHIMMED_TOOLS)[number];

export type ShimRule =
  | { action: 'delay'; ms: number; match?: string }
  | { action: 'fail'; match?: string; message?: string };

export interface ShimCall { at: number; tool: string; args: string[]; phase: 'start' | 'end'; exit?: number }

export interface Shim {
  readonly dir: string;
  /** PATH for a process that must go through the shim. */
  path(): string;
  set(tool: ShimmedTool, rule: ShimRule): void;
  clear(tool?: ShimmedTool): void;
  /** Every call so far (start and end lines). */
  calls(): ShimCall[];
  /** Calls that change the kernel (anything but save/list/-S/-L/version queries). */
  writes(since?: number): ShimCall[];
  destroy(): void;
}

// The wrapper: log "start", apply the control file, run the real tool with the same stdin, log "end".
// Control file: "<action> <ms> <match>": match is "*" (every call), the first argument ("restore") or
// all of them ("restore -exist"); the message follows on line 2.
const WRAPPER = (dir: string, tool: string, real: string) => `#!/bin/sh
dir='${dir}'
tool='${tool}'
now() { date +%s%3N; }
echo "$(now) start $tool $*" >> "$dir/calls"
ctl="$dir/ctl-$tool"
if [ -f "$ctl" ]; then
  { read -r action ms match; read -r message; } < "$ctl"
  if [ "$match" = "*" ] || [ "$1" = "$match" ] || [ "$*" = "$match" ]; then
    if [ "$action" = delay ]; then sleep "$(echo "$ms" | awk '{ printf "%.3f", $1 / 1000 }')"; fi
    if [ "$action" = fail ]; then
      echo "\${message:-injected failure}" >&2
      echo "$(now) end $tool 1 $*" >> "$dir/calls"
      exit 1
    fi
  fi
fi
'${real}' "$@"
code=$?
echo "$(now) end $tool $code $*" >> "$dir/calls"
exit $code
`;

function realPath(tool: string): string {
  for (const d of ['/usr/sbin', '/sbin', '/usr/bin', '/bin']) if (existsSync(join(d, tool))) return join(d, tool);
  return tool;
}

const READ_ONLY = (c: ShimCall) => /-save$/.test(c.tool)
  || (c.tool === 'ipset' && ['save', 'list', '-L', 'version', '-v', '-n'].includes(c.args[0] ?? ''))
  || (/^iptables-(nft|legacy)$/.test(c.tool) && c.args.some((a) => ['-S', '-L', '--list', '--list-rules', '-V', '--version'].includes(a)))
  || (c.tool === 'nft' && (c.args.includes('list') || c.args.includes('--version') || c.args.includes('-v')));

export function createShim(): Shim {
  const dir = mkdtempSync(join(tmpdir(), 'fencer-shim-'));
  for (const tool of SHIMMED_TOOLS) {
    const file = join(dir, tool);
    writeFileSync(file, WRAPPER(dir, tool, realPath(tool)));
    chmodSync(file, 0o755);
  }
  appendFileSync(join(dir, 'calls'), '');
  const calls = (): ShimCall[] => readFileSync(join(dir, 'calls'), 'utf8').split('\n').filter(Boolean).map((line) => {
    const [at, phase, tool, ...rest] = line.split(' ');
    if (phase === 'end') {
      const [exit, ...args] = rest;
      return { at: Number(at), phase, tool, exit: Number(exit), args };
    }
    return { at: Number(at), phase: 'start', tool, args: rest };
  });
  return {
    dir,
    path: () => `${dir}:${process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'}`,
    set(tool, rule) {
      const ms = rule.action === 'delay' ? rule.ms : 0;
      const message = rule.action === 'fail' ? (rule.message ?? 'injected failure') : '';
      writeFileSync(join(dir, `ctl-${tool}`), `${rule.action} ${ms} ${rule.match ?? '*'}\n${message}\n`);
    },
    clear(tool) {
      for (const t of tool ? [tool] : SHIMMED_TOOLS) rmSync(join(dir, `ctl-${t}`), { force: true });
    },
    calls,
    writes: (since = 0) => calls().filter((c) => c.phase === 'start' && c.at >= since && !READ_ONLY(c)),
    destroy: () => rmSync(dir, { recursive: true, force: true }),
  };
}
