// Imports point one way: the contract (crds/) and shared helpers (runtime/) at the bottom, operator
// and agent beside each other and never into each other, and no product folder reaching into test/.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const FORBIDDEN: Record<string, string[]> = {
  crds: ['agent', 'operator', 'cli', 'sandbox', 'inspect', 'bench', 'test'],
  runtime: ['agent', 'operator', 'cli', 'sandbox', 'inspect', 'bench', 'test'],
  agent: ['operator', 'cli', 'sandbox', 'inspect', 'bench', 'test', 'localcluster'],
  operator: ['agent', 'cli', 'sandbox', 'inspect', 'bench', 'test'],
};
const IMPORT = /(?:\bfrom|\bimport\s*\(|^import)\s*'(\.{1,2}\/[^']+)'/gm;

function* tsFiles(dir: string): Generator<string> {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === 'node_modules' || entry.name.startsWith('.')) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* tsFiles(path);
    else if (entry.name.endsWith('.ts')) yield path;
  }
}

test('layers: no import crosses into a layer above it, and product code never imports test/', () => {
  const crossings: string[] = [];
  let files = 0;
  for (const file of tsFiles(root)) {
    const from = relative(root, file);
    const layer = from.split('/')[0];
    if (!from.includes('/')) continue;
    files++;
    for (const [, spec] of readFileSync(file, 'utf8').matchAll(IMPORT)) {
      const to = normalize(relative(root, join(dirname(file), spec)));
      const target = to.split('/')[0];
      const forbidden = layer === 'test' ? [] : [...(FORBIDDEN[layer] ?? []), 'test'];
      if (forbidden.includes(target)) crossings.push(`${from} imports ${to}`);
    }
  }
  assert.ok(files > 200, `read ${files} files`);
  assert.deepEqual(crossings, []);
});
