// `npm test`: prepares the machine (scripts/setup.sh), typechecks, starts ONE control plane
// (etcd + kube-apiserver, localcluster/control-plane.ts) for the whole run, and runs every test file
// with node:test, one file at a time. Integration tests find the cluster through
// FENCER_TEST_KUBECONFIG and FENCER_TEST_BIN_DIR (test/integration/env.ts).
//
//   node scripts/test.ts                     all of test/unit, test/property, test/integration
//   node scripts/test.ts <file|glob> ...     only these
//   node scripts/test.ts --skip-typecheck    skip tsc
// The control plane is started only when a selected file lies outside test/unit and test/property.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { globSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startControlPlane, type ControlPlane } from '../localcluster/control-plane.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const defaultGlobs = ['test/unit/**/*.test.ts', 'test/property/**/*.test.ts', 'test/integration/**/*.test.ts'];
const clusterFree = ['test/unit/', 'test/property/'];

function say(message: string): void {
  process.stderr.write(`[test] ${message}\n`);
}

function step(name: string, command: string, args: string[]): void {
  const started = Date.now();
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit' });
  if (result.status !== 0) {
    say(`${name} failed (exit ${result.status ?? result.signal})`);
    process.exit(result.status ?? 1);
  }
  const ms = Date.now() - started;
  if (ms > 1000) say(`${name}: ${(ms / 1000).toFixed(1)} s`);
}

const args = process.argv.slice(2);
const skipTypecheck = args.includes('--skip-typecheck');
const patterns = args.filter((a) => !a.startsWith('--'));

step('setup', 'bash', [join(root, 'scripts/setup.sh')]);
if (!skipTypecheck) step('typecheck', process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json']);

const files = [...new Set((patterns.length ? patterns : defaultGlobs).flatMap((g) => globSync(g, { cwd: root })))]
  .map((f) => relative(root, join(root, f)))
  .sort();
if (files.length === 0) {
  say(`no test files match ${(patterns.length ? patterns : defaultGlobs).join(' ')}`);
  process.exit(patterns.length ? 1 : 0);
}

let child: ChildProcess | undefined;
// Registered before the control plane's own handlers, so the runner hears of SIGTERM first.
process.on('SIGTERM', () => child?.kill('SIGTERM'));

let cp: ControlPlane | undefined;
const env: NodeJS.ProcessEnv = { ...process.env };
if (files.some((f) => !clusterFree.some((dir) => f.startsWith(dir)))) {
  cp = await startControlPlane();
  say(`control plane ready in ${(cp.startupMs / 1000).toFixed(1)} s at ${cp.server} (logs: ${cp.logDir})`);
  env.FENCER_TEST_KUBECONFIG = cp.kubeconfigPath;
  env.FENCER_TEST_BIN_DIR = cp.binDir;
}

child = spawn(process.execPath, ['--test', '--test-reporter=spec', '--test-concurrency=1', ...files], { cwd: root, stdio: 'inherit', env });
const code = await new Promise<number>((resolve) => {
  child?.on('error', () => resolve(1));
  child?.on('exit', (c, signal) => resolve(c ?? (signal ? 128 : 1)));
});

if (cp) {
  if (code !== 0 && process.env.FENCER_KEEP_CLUSTER !== '1') say(`tests failed: rerun with FENCER_KEEP_CLUSTER=1 to keep the control plane's logs`);
  await cp.stop();
}
process.exit(code);
