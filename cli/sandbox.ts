// `fencer sandbox`, `fencer sandbox matrix`, `fencer sandbox --down`.
import type { Command } from 'commander';
import { runSandbox, sandboxDown } from '../sandbox/main.ts';
import { sandboxMatrix } from '../sandbox/matrix-command.ts';

export function registerSandboxCommand(program: Command): void {
  const sandbox = program.command('sandbox')
    .description('run a miniature cluster on this machine (root): apiserver, operator, one agent per simulated node')
    .option('--nodes <n>', 'simulated nodes', (v) => Number(v), 2)
    .option('--prefix <p>', 'prefix of every network namespace it creates', 'fsbx')
    .option('--once', 'walk through the examples, then stop and clean up')
    .option('--down', 'stop a running sandbox or remove what a crashed one left, then exit')
    .option('--dataplane <kind>', 'the agents\' dataplane: auto, iptables or nftables', 'auto')
    .action(async (o: { nodes: number; prefix: string; once?: boolean; down?: boolean; dataplane: string }) => {
      if (!['auto', 'iptables', 'nftables'].includes(o.dataplane)) {
        console.error(`--dataplane ${o.dataplane}: expected auto, iptables or nftables`);
        process.exitCode = 2;
        return;
      }
      if (o.down) return sandboxDown(o.prefix);
      process.exitCode = await runSandbox(o);
    });
  sandbox.command('matrix')
    .description('probe the running sandbox now and print its connectivity matrix')
    .option('--probe <proto/port>', 'TCP/80, UDP/81, ...', 'TCP/80')
    .action(async (o: { probe: string }) => {
      const m = /^(TCP|UDP)\/(\d+)$/.exec(o.probe);
      if (!m) {
        console.error(`--probe ${o.probe}: expected TCP/PORT or UDP/PORT`);
        process.exitCode = 2;
        return;
      }
      process.exitCode = await sandboxMatrix(m[1] as 'TCP' | 'UDP', Number(m[2]));
    });
}
