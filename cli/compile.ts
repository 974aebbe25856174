// `fencer compile -f DIR`: the objects a cluster's manifests compile to, without a cluster — each
// node's CompiledPolicySet and the AddressSet shards of the shared sets they name, as the operator
// writes them; `--full` prints each node's spec with every set in full instead (what its agent enforces).
import type { Command } from 'commander';
import * as yaml from 'js-yaml';
import { loadManifests, ManifestError } from '../model/manifests.ts';
import { PolicyCompiler } from '../operator/compile/compiler.ts';
import { cpsObject } from '../operator/cps-object.ts';
import { desiredShards } from '../operator/set-plan.ts';

export function compileCommand(paths: string[], node?: string, full = false): number {
  try {
    const { snapshot, ignored } = loadManifests(paths);
    for (const i of ignored) console.error(`ignored (not a Namespace, Pod, Node or NetworkPolicy): ${i}`);
    const compiler = PolicyCompiler.loaded(snapshot);
    const specs = full ? compiler.current() : compiler.nodeSpecs();
    if (node !== undefined && !specs.has(node)) {
      console.error(`no node named ${node} in the manifests (nodes: ${[...specs.keys()].join(', ') || 'none'})`);
      return 2;
    }
    const out: object[] = [...specs.values()].filter((s) => node === undefined || s.nodeName === node).map(cpsObject);
    if (!full) {
      for (const id of compiler.sharedSetIds()) {
        const set = compiler.sharedSet(id)!;
        if (node === undefined || set.nodes.includes(node)) out.push(...desiredShards(set, set.nodes, []));
      }
    }
    process.stdout.write(out.map((o) => yaml.dump(o, { noRefs: true, lineWidth: -1 })).join('---\n'));
    return 0;
  } catch (e) {
    if (!(e instanceof ManifestError)) throw e;
    console.error(e.message);
    return 2;
  }
}

export function registerCompileCommand(program: Command): void {
  program.command('compile')
    .description('compile manifests (Namespaces, Pods, Nodes, NetworkPolicies) into CompiledPolicySets and the AddressSets they name, printed as YAML')
    .requiredOption('-f, --filename <paths...>', 'manifest files or directories')
    .option('--node <name>', 'print only this node (and the sets it uses)')
    .option('--full', 'print each node\'s spec with every set in full (what its agent enforces) instead')
    .action((opts: { filename: string[]; node?: string; full?: boolean }) => { process.exitCode = compileCommand(opts.filename, opts.node, opts.full); });
}
