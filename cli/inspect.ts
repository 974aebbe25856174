// `fencer explain`, `fencer show`, `fencer verify`, `fencer status` (also `kubectl fencer …`):
// registration only; the logic lives in inspect/.
import type { Command } from 'commander';
import { explainCommand, runInspect, showCommand, statusCommand, verifyCommand, type ExplainFlags, type ShowFlags, type StatusFlags, type VerifyFlags } from '../inspect/commands.ts';

const collect = (value: string, previous: string[] = []) => [...previous, value];

export function registerInspectCommands(program: Command): void {
  program.command('explain')
    .description('why a connection is allowed or denied: per direction, the policies that select each side and the rule that allows it or the default deny that blocks it')
    .requiredOption('--from <pod|ip>', 'the source: NAMESPACE/POD or an IPv4 address')
    .requiredOption('--to <pod|ip>', 'the destination: NAMESPACE/POD or an IPv4 address')
    .option('-p, --port <port>', 'PORT[/PROTOCOL] (TCP by default) or a named port of the destination; repeatable (default: every port the destination declares)', collect)
    .option('-f, --filename <paths...>', 'explain offline from manifests (Namespaces, Pods, Nodes, NetworkPolicies) instead of a live cluster')
    .option('-o, --output <format>', 'text or json', 'text')
    .option('--kubeconfig <path>', 'kubeconfig (default: $KUBECONFIG, ~/.kube/config, in-cluster)')
    .addHelpText('after', '\nExit status: 0 allowed (on every port), 1 denied (on some port), 2 bad input or missing state, 3 the compiled rules and the reference semantics disagree (a bug).')
    .action(async (flags: ExplainFlags) => { process.exitCode = await runInspect(() => explainCommand(flags)); });

  program.command('show')
    .description("a node's CompiledPolicySet as tables: its sets (kernel name, kind, members, origin) and each target's rules in order")
    .argument('<node>', 'node name')
    .option('-f, --filename <paths...>', 'compile the node from manifests instead of reading its CompiledPolicySet')
    .option('-o, --output <format>', 'text or json', 'text')
    .option('--kubeconfig <path>', 'kubeconfig (default: $KUBECONFIG, ~/.kube/config, in-cluster)')
    .action(async (node: string, flags: ShowFlags) => { process.exitCode = await runInspect(() => showCommand(node, flags)); });

  program.command('verify')
    .description("compare the kernel's live ipsets and iptables rules with the node's CompiledPolicySet (run as root on the node); exit 0 only when they match")
    .argument('<node>', 'node name')
    .option('--netns <name>', 'read the kernel state inside this network namespace')
    .option('--sandbox', 'aim at a node of the running `fencer sandbox` (its network namespace and kubeconfig)')
    .option('-f, --filename <paths...>', 'compare with the spec compiled from manifests instead of the cluster\'s CompiledPolicySet')
    .option('--kubeconfig <path>', 'kubeconfig (default: $KUBECONFIG, ~/.kube/config, in-cluster)')
    .option('--hook-position <where>', 'where the agent puts the FORWARD jump: after-kube-services or first (default: as the agent; first with --sandbox)')
    .option('--iptables-mode <mode>', 'auto, nft or legacy', 'auto')
    .addHelpText('after', '\nExit status: 0 the kernel matches, 1 it differs, 2 could not compare.')
    .action(async (node: string, flags: VerifyFlags) => { process.exitCode = await runInspect(() => verifyCommand(node, flags)); });

  program.command('status')
    .description('one line per node: the generation its agent enforces versus the latest, in sync since when, and errors')
    .option('-o, --output <format>', 'text or json', 'text')
    .option('--kubeconfig <path>', 'kubeconfig (default: $KUBECONFIG, ~/.kube/config, in-cluster)')
    .addHelpText('after', '\nExit status: 0 every node enforces its latest CompiledPolicySet, 1 some node does not, 2 could not read the cluster.')
    .action(async (flags: StatusFlags) => { process.exitCode = await runInspect(() => statusCommand(flags)); });
}
