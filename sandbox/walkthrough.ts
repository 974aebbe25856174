// The sandbox's example workload and the AKS walkthrough policies from examples/.
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as yaml from 'js-yaml';
import type { V1NetworkPolicy } from '@kubernetes/client-node';
import { parseScenario, type Scenario } from '../matrix/scenario.ts';

const EXAMPLES = fileURLToPath(new URL('../examples/', import.meta.url));

export function exampleWorkload(nodes: string[]): Scenario {
  const cluster = yaml.load(readFileSync(`${EXAMPLES}cluster.yaml`, 'utf8')) as Record<string, unknown>;
  return parseScenario(`${EXAMPLES}cluster.yaml`, { name: 'sandbox', cluster: { ...cluster, nodes } });
}

export function examplePolicies(): Array<{ file: string; policy: V1NetworkPolicy; title: string }> {
  return readdirSync(EXAMPLES).filter((f) => /^\d+-.*\.yaml$/.test(f)).sort().map((file) => {
    const text = readFileSync(`${EXAMPLES}${file}`, 'utf8');
    return { file, policy: yaml.load(text) as V1NetworkPolicy, title: /^# (.*)$/m.exec(text)?.[1] ?? file };
  });
}
