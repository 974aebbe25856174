// `fencer compile -f DIR`: the CompiledPolicySets a cluster's manifests compile to, without a cluster.
import * as yaml from 'js-yaml';
import { loadManifests, ManifestError } from '../model/manifests.ts';
import { PolicyCompiler } from '../operator/compile/compiler.ts';
import { cpsObject } from '../operator/cps-object.ts';

export function compileCommand(paths: string[], node?: string): number {
  try {
    const { snapshot, ignored } = loadManifests(paths);
    for (const i of ignored) console.error(`ignored (not a Namespace, Pod, Node or NetworkPolicy): ${i}`);
    const specs = PolicyCompiler.compile(snapshot);
    if (node !== undefined && !specs.has(node)) {
      console.error(`no node named ${node} in the manifests (nodes: ${[...specs.keys()].join(', ') || 'none'})`);
      return 2;
    }
    const out = [...specs.values()].filter((s) => node === undefined || s.nodeName === node);
    process.stdout.write(out.map((s) => yaml.dump(cpsObject(s), { noRefs: true, lineWidth: -1 })).join('---\n'));
    return 0;
  } catch (e) {
    if (!(e instanceof ManifestError)) throw e;
    console.error(e.message);
    return 2;
  }
}
