#!/usr/bin/env node
// The `fencer` command: one entry point for every subcommand.
import { Command } from 'commander';
import { matrixCommand } from './matrix.ts';
import { compileCommand } from './compile.ts';
import { registerOperatorCommand } from './operator.ts';
import { registerAgentCommand } from './agent.ts';
import { registerSandboxCommand } from './sandbox.ts';
import { registerInspectCommands } from './inspect.ts';

const program = new Command('fencer').description('Kubernetes NetworkPolicy manager').showHelpAfterError();

program.command('matrix')
  .description('run scenario files on the compiled rules (or the reference semantics with --oracle)')
  .argument('<files...>', 'scenario YAML files')
  .option('--oracle', 'evaluate the policies directly with the reference semantics')
  .action((files: string[], opts: { oracle?: boolean }) => { process.exitCode = matrixCommand(files, opts.oracle ? 'oracle' : 'compiled'); });

program.command('compile')
  .description('compile manifests (Namespaces, Pods, Nodes, NetworkPolicies) into CompiledPolicySets and the AddressSets they name, printed as YAML')
  .requiredOption('-f, --filename <paths...>', 'manifest files or directories')
  .option('--node <name>', 'print only this node (and the sets it uses)')
  .option('--full', 'print each node\'s spec with every set in full (what its agent enforces) instead')
  .action((opts: { filename: string[]; node?: string; full?: boolean }) => { process.exitCode = compileCommand(opts.filename, opts.node, opts.full); });

registerAgentCommand(program);
registerSandboxCommand(program);

registerOperatorCommand(program);
registerInspectCommands(program);

await program.parseAsync();
