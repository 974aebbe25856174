// What the agent loads decides its resident memory on every node (docs/decisions.md 13 and 15):
// not the Kubernetes client, not execa, and not Node's bundled undici, which an ES import of
// node:http alone would load.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const PROBE = `
import { registerHooks } from 'node:module';
const packages = new Set();
registerHooks({ resolve(spec, ctx, next) {
  const r = next(spec, ctx);
  const m = /node_modules\\/((?:@[^/]+\\/)?[^/]+)/.exec(r.url);
  if (m) packages.add(m[1]);
  return r;
} });
await import('./cli/agent.ts');
console.log(JSON.stringify({ packages: [...packages].sort(), internal: process.moduleLoadList.filter((m) => /undici/.test(m)) }));
`;

test("the agent's modules load neither the Kubernetes client nor Node's undici", () => {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', PROBE], { cwd: root, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const { packages, internal } = JSON.parse(r.stdout) as { packages: string[]; internal: string[] };
  assert.ok(packages.includes('prom-client') && packages.includes('pino'), `the probe saw the agent's libraries: ${packages.join(', ')}`);
  for (const heavy of ['@kubernetes/client-node', 'undici', 'execa', '@opentelemetry/api']) assert.ok(!packages.includes(heavy), `${heavy} loaded`);
  assert.deepEqual(internal, []);
});
