// The inspect commands end to end: flags in, text or JSON out, and an exit code. Every expected
// failure is an InspectError, printed as one line without a stack.
import type { KubeConfig } from '@kubernetes/client-node';
import type { IptablesMode } from '../agent/dataplane/linux/backend.ts';
import type { CompiledPolicySet, CompiledPolicySetSpec } from '../crds/types.ts';
import { alive, readState, STATE_FILE } from '../sandbox/state.ts';
import { InspectError } from './errors.ts';
import { explain, type Explanation } from './explain.ts';
import { formatExplanation } from './explain-text.ts';
import { inspectKubeConfig, listCps, readNodeNames } from './kube.ts';
import { formatSpec } from './show.ts';
import { enforcementOf, formatStatus, statusRows } from './status.ts';
import type { HookPosition } from './verify.ts';
import { verifyKernel } from './verify-run.ts';
import { plural } from './wording.ts';
import { liveCps, liveExplainView, offlineSpec, offlineView, type ClusterView } from './views.ts';

export interface Output { out(text: string): void; err(text: string): void }

const stdio: Output = { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t) };

export type OutputFormat = 'text' | 'json';

export interface ExplainFlags { from: string; to: string; port?: string[]; filename?: string[]; output?: string; kubeconfig?: string }

/** Exit 0: allowed on every port; 1: denied on some port; 2: bad input or missing state; 3: compiled rules and oracle disagree. */
export async function explainCommand(flags: ExplainFlags, io: Output = stdio): Promise<number> {
  const format = outputFormat(flags.output);
  let view: ClusterView;
  if (flags.filename?.length) view = offlineView(flags.filename);
  else view = await liveExplainView(kubeConfig(flags.kubeconfig), flags.from, flags.to);
  const e: Explanation = explain({ snapshot: view.snapshot, specs: view.specs, from: flags.from, to: flags.to, ports: flags.port, origin: view.origin, enforcement: view.enforcement });
  io.out(format === 'json' ? `${JSON.stringify(e, null, 2)}\n` : formatExplanation(e));
  if (!e.agrees) return 3;
  return e.allowed ? 0 : 1;
}

export interface ShowFlags { filename?: string[]; output?: string; kubeconfig?: string }

export async function showCommand(node: string, flags: ShowFlags, io: Output = stdio): Promise<number> {
  const format = outputFormat(flags.output);
  let spec: CompiledPolicySetSpec;
  let cps: CompiledPolicySet | undefined;
  let view: ClusterView | undefined;
  if (flags.filename?.length) {
    view = offlineView(flags.filename);
    spec = offlineSpec(view, node);
  } else {
    const kc = kubeConfig(flags.kubeconfig);
    cps = await liveCps(kc, node);
    spec = cps.spec;
  }
  if (format === 'json') {
    io.out(`${JSON.stringify(cps ?? { spec }, null, 2)}\n`);
    return 0;
  }
  io.out(formatSpec(spec, cps ? enforcementOf(cps) : undefined));
  return 0;
}

export interface VerifyFlags { netns?: string; sandbox?: boolean; filename?: string[]; kubeconfig?: string; hookPosition?: string; iptablesMode?: string }

/** Exit 0: the kernel holds exactly the spec; 1: it differs; 2: could not compare. */
export async function verifyCommand(node: string, flags: VerifyFlags, io: Output = stdio): Promise<number> {
  let netns = flags.netns;
  let kubeconfig = flags.kubeconfig;
  let hookPosition = parseHookPosition(flags.hookPosition);
  if (flags.sandbox) {
    const state = readState();
    if (!state) throw new InspectError(`no sandbox is running (${STATE_FILE} does not exist): start one with \`fencer sandbox\`, or give --netns NAME`);
    if (!alive(state.pid)) throw new InspectError(`the sandbox recorded in ${STATE_FILE} (pid ${state.pid}) is not running any more: start one with \`fencer sandbox\`, or clean up with \`fencer sandbox --down\``);
    netns ??= `${state.prefix}-${node}`;
    kubeconfig ??= state.kubeconfig;
    // The sandbox's agents put the jump first: there is no kube-proxy in the simulated nodes.
    hookPosition = flags.hookPosition ? hookPosition : 'first';
  }
  let spec: CompiledPolicySetSpec;
  let cps: CompiledPolicySet | undefined;
  if (flags.filename?.length) spec = offlineSpec(offlineView(flags.filename), node);
  else {
    cps = await liveCps(kubeConfig(kubeconfig), node);
    spec = cps.spec;
  }
  const outcome = await verifyKernel({ spec, netns, hookPosition, iptablesMode: parseIptablesMode(flags.iptablesMode) });
  const where = netns ? `network namespace ${netns}` : 'this machine';
  const generation = cps?.metadata.generation !== undefined ? `generation ${cps.metadata.generation}, ` : '';
  const lines = [`verify ${node} on ${where} against its CompiledPolicySet (${generation}hash ${spec.contentHash.replace(/^sha256:/, '').slice(0, 12)})`];
  const pending = cps?.status?.appliedHash && cps.status.appliedHash !== spec.contentHash
    ? `note: the agent reports enforcing ${cps.status.appliedHash.replace(/^sha256:/, '').slice(0, 12)}, not the latest spec: some differences may be the update still pending`
    : undefined;
  if (outcome.matches) {
    lines.push(`the kernel matches the spec: ${plural(spec.targets.length, 'target')}, ${plural(spec.counts.rules, 'rule')}, ${plural(spec.ipSets.filter((s) => !s.name.startsWith('t-')).length, 'set')}`);
  } else {
    const all = [...outcome.differences];
    // The agent's own check catches anything the detailed comparison does not put into words.
    if (outcome.differences.length === 0) all.push(...outcome.drift.map((d) => `${d} (the agent's drift check)`));
    lines.push(`the kernel differs from the spec in ${all.length} way${all.length === 1 ? '' : 's'}:`);
    for (const d of all) lines.push(`  - ${d}`);
    lines.push("the agent repairs drift at its next drift check (--drift-seconds); if it persists, the agent's log and the Degraded condition (`fencer status`) say why");
  }
  if (pending) lines.push(pending);
  for (const n of outcome.notes) lines.push(`note: ${n}`);
  io.out(`${lines.join('\n')}\n`);
  return outcome.matches ? 0 : 1;
}

export interface StatusFlags { kubeconfig?: string; output?: string }

/** Exit 0 when every node enforces its latest CompiledPolicySet, 1 otherwise. */
export async function statusCommand(flags: StatusFlags, io: Output = stdio): Promise<number> {
  const format = outputFormat(flags.output);
  const kc = kubeConfig(flags.kubeconfig);
  const [nodes, sets] = await Promise.all([readNodeNames(kc), listCps(kc)]);
  const rows = statusRows(nodes, sets);
  io.out(format === 'json' ? `${JSON.stringify(rows, null, 2)}\n` : formatStatus(rows));
  return rows.every((r) => r.inSync) ? 0 : 1;
}

/** Runs a command, turning InspectErrors into one line on stderr and their exit code. */
export async function runInspect(fn: () => Promise<number>, io: Output = stdio): Promise<number> {
  try {
    return await fn();
  } catch (e) {
    if (!(e instanceof InspectError)) throw e;
    io.err(`error: ${e.message}\n`);
    return e.exitCode;
  }
}

function kubeConfig(path?: string): KubeConfig {
  try {
    return inspectKubeConfig(path);
  } catch (e) {
    const state = e instanceof InspectError && !path ? readState() : undefined;
    if (state && alive(state.pid)) throw new InspectError(`${(e as Error).message}; a sandbox is running: --kubeconfig ${state.kubeconfig}`);
    throw e;
  }
}

function outputFormat(value: string | undefined): OutputFormat {
  if (value === undefined || value === 'text' || value === 'wide') return 'text';
  if (value === 'json') return 'json';
  throw new InspectError(`-o ${value}: expected text or json`);
}

function parseHookPosition(value: string | undefined): HookPosition {
  if (value === undefined || value === 'after-kube-services' || value === 'first') return value ?? 'after-kube-services';
  throw new InspectError(`--hook-position ${value}: expected after-kube-services or first`);
}

function parseIptablesMode(value: string | undefined): 'auto' | IptablesMode {
  if (value === undefined || value === 'auto' || value === 'nft' || value === 'legacy') return value ?? 'auto';
  throw new InspectError(`--iptables-mode ${value}: expected auto, nft or legacy`);
}

