// `fencer operator`: flags and environment variables → startOperator, until SIGTERM or SIGINT.
// Precedence: flag, then environment variable, then default (docs/operator.md).
import { Command, InvalidArgumentError, Option } from 'commander';
import { createLogger } from '../runtime/log.ts';
import { startOperator } from '../operator/operator.ts';
import { DEFAULT_OPTIONS, OptionsError } from '../operator/options.ts';

interface OperatorFlags {
  kubeconfig?: string;
  namespace: string;
  metricsPort: number;
  metricsHost: string;
  coalesceMs: number;
  cpsBudgetBytes: number;
  relistSeconds: number;
  leaseName: string;
  identity?: string;
  writeConcurrency: number;
  pendingAfterMs: number;
  logLevel: string;
}

function integer(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n)) throw new InvalidArgumentError('not an integer');
  return n;
}

const flag = (flags: string, description: string, env: string, fallback?: unknown, parse?: (v: string) => unknown) => {
  const option = new Option(flags, description).env(env);
  if (parse) option.argParser(parse);
  if (fallback !== undefined) option.default(fallback);
  return option;
};

export function registerOperatorCommand(program: Command): void {
  const d = DEFAULT_OPTIONS;
  program.command('operator')
    .description('watch the cluster and keep every node\'s CompiledPolicySet current (leader-elected)')
    .addOption(new Option('--kubeconfig <path>', 'kubeconfig file (default: $KUBECONFIG, ~/.kube/config, then in-cluster)'))
    .addOption(flag('--namespace <ns>', 'namespace of the leader-election Lease', 'FENCER_NAMESPACE', d.namespace))
    .addOption(flag('--lease-name <name>', 'name of the Lease', 'FENCER_LEASE_NAME', d.leaseName))
    .addOption(flag('--identity <id>', 'this replica\'s identity in the Lease; must be unique (default: host name)', 'FENCER_IDENTITY'))
    .addOption(flag('--metrics-port <port>', 'port for /healthz, /readyz, /cluster-metrics (-1: none)', 'FENCER_METRICS_PORT', d.metricsPort, integer))
    .addOption(flag('--metrics-host <addr>', 'address to serve HTTP on', 'FENCER_METRICS_HOST', d.metricsHost))
    .addOption(flag('--coalesce-ms <ms>', 'recompile and write at most once per this many ms (a change after a quiet window goes at once)', 'FENCER_COALESCE_MS', d.coalesceMs, integer))
    .addOption(flag('--cps-budget-bytes <bytes>', 'largest CompiledPolicySet spec; bigger ones get compressed member lists', 'FENCER_CPS_BUDGET_BYTES', d.cpsBudgetBytes, integer))
    .addOption(flag('--relist-seconds <s>', 'safety relist period of every watch (0: never)', 'FENCER_RELIST_SECONDS', d.relistSeconds, integer))
    .addOption(flag('--write-concurrency <n>', 'CompiledPolicySet writes in flight at once', 'FENCER_WRITE_CONCURRENCY', d.writeConcurrency, integer))
    .addOption(flag('--pending-after-ms <ms>', 'mark a node InSync=Pending when its agent has not reported a new generation this long after the write', 'FENCER_PENDING_AFTER_MS', d.pendingAfterMs, integer))
    .addOption(flag('--log-level <level>', 'trace, debug, info, warn, error', 'FENCER_LOG_LEVEL', 'info'))
    .action(async (flags: OperatorFlags) => {
      process.exitCode = await runOperator(flags);
    });
}

async function runOperator(flags: OperatorFlags): Promise<number> {
  const log = createLogger('fencer-operator', flags.logLevel);
  let operator;
  try {
    operator = await startOperator({
      kubeconfigPath: flags.kubeconfig,
      namespace: flags.namespace,
      leaseName: flags.leaseName,
      identity: flags.identity,
      metricsPort: flags.metricsPort,
      metricsHost: flags.metricsHost,
      coalesceMs: flags.coalesceMs,
      cpsBudgetBytes: flags.cpsBudgetBytes,
      relistSeconds: flags.relistSeconds,
      writeConcurrency: flags.writeConcurrency,
      pendingAfterMs: flags.pendingAfterMs,
      log,
    });
  } catch (e) {
    if (!(e instanceof OptionsError)) throw e;
    log.error(e.message);
    return 2;
  }
  const signal = await new Promise<string>((resolve) => {
    // Listeners that stay: a library's signal-exit re-raises a signal nobody else listens to, which
    // would end the process before the lease is released.
    process.on('SIGTERM', () => resolve('SIGTERM'));
    process.on('SIGINT', () => resolve('SIGINT'));
  });
  log.info({ signal }, 'shutting down');
  await operator.stop();
  // Everything is closed; should a stray handle keep the loop alive, do not hang the pod's termination.
  setTimeout(() => process.exit(0), 2000).unref();
  return 0;
}
