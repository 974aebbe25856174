#!/usr/bin/env node
// The `fencer` command: one entry point for every subcommand. Only the module of the subcommand
// being run is loaded: the agent runs on every node, and loading the operator, sandbox and
// inspect commands beside it (and the libraries they import) cost it tens of MiB of memory it
// never used. Help, and anything not recognised, loads them all.
import { Command } from 'commander';

type Register = (program: Command) => void;

const commands: Record<string, () => Promise<Register>> = {
  matrix: async () => (await import('./matrix.ts')).registerMatrixCommand,
  compile: async () => (await import('./compile.ts')).registerCompileCommand,
  agent: async () => (await import('./agent.ts')).registerAgentCommand,
  sandbox: async () => (await import('./sandbox.ts')).registerSandboxCommand,
  operator: async () => (await import('./operator.ts')).registerOperatorCommand,
  explain: async () => (await import('./inspect.ts')).registerInspectCommands,
  show: async () => (await import('./inspect.ts')).registerInspectCommands,
  verify: async () => (await import('./inspect.ts')).registerInspectCommands,
  status: async () => (await import('./inspect.ts')).registerInspectCommands,
};

const program = new Command('fencer').description('Kubernetes NetworkPolicy manager').showHelpAfterError();
const invoked = process.argv.slice(2).find((a) => !a.startsWith('-'));
const wanted = invoked !== undefined && invoked in commands ? [commands[invoked]] : Object.values(commands);
const registered = new Set<Register>();
for (const load of wanted) {
  const register = await load();
  if (registered.has(register)) continue;
  registered.add(register);
  register(program);
}

await program.parseAsync();
