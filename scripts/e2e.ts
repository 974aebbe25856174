// `npm run e2e -- [--dataplane iptables|nftables] FILE...`: scenario files on the sandbox with real packets (one control plane for
// all files; each file gets fresh node and pod namespaces). Exit 0 all grids match, 1 a grid
// differs, 2 an invalid file. FENCER_TEST_KUBECONFIG attaches to a running control plane instead.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { LinuxBackend } from '../agent/dataplane/choose.ts';
import { loadScenario, ScenarioError } from '../matrix/scenario.ts';
import { createLogger } from '../runtime/log.ts';
import { runScenarioOnSandbox } from '../sandbox/run-scenario.ts';
import { attachCluster, startControlPlane, type Cluster } from '../localcluster/control-plane.ts';

const args = process.argv.slice(2);
const at = args.indexOf('--dataplane');
const dataplane = at >= 0 ? args.splice(at, 2)[1] : undefined;
const files = args;
if (files.length === 0 || (dataplane !== undefined && dataplane !== 'iptables' && dataplane !== 'nftables')) {
  console.error('usage: npm run e2e -- [--dataplane iptables|nftables] FILE...');
  process.exit(2);
}
const root = fileURLToPath(new URL('..', import.meta.url));
if (spawnSync('bash', [`${root}/scripts/setup.sh`], { stdio: 'inherit' }).status !== 0) process.exit(1);
const log = createLogger('e2e', process.env.FENCER_LOG_LEVEL ?? 'warn');
const attached = process.env.FENCER_TEST_KUBECONFIG;
const cp = attached ? undefined : await startControlPlane();
const cluster: Cluster = cp ?? attachCluster(attached!, process.env.FENCER_TEST_BIN_DIR);
let invalid = false;
let failed = false;
const converge: number[] = [];
try {
  for (const file of files) {
    let scenario;
    try {
      scenario = loadScenario(file);
    } catch (e) {
      if (!(e instanceof ScenarioError)) throw e;
      console.error(`invalid scenario: ${e.message}`);
      invalid = true;
      continue;
    }
    const started = performance.now();
    const outcome = await runScenarioOnSandbox(cluster, scenario, (l) => console.log(l), log, 'fe2e', dataplane as LinuxBackend | undefined);
    converge.push(...outcome.convergeMs);
    console.log(`-- ${scenario.name}: ${outcome.passed ? 'pass' : 'FAIL'} in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    if (!outcome.passed) failed = true;
  }
} finally {
  await cp?.stop();
}
converge.sort((a, b) => a - b);
const pct = (q: number) => Math.round(converge[Math.min(converge.length - 1, Math.floor(q * converge.length))] ?? 0);
console.log(`${files.length} file(s): ${invalid ? 'invalid input' : failed ? 'grids differ' : 'all grids match'}; steps enforced in p50 ${pct(0.5)} ms, p99 ${pct(0.99)} ms`);
process.exit(invalid ? 2 : failed ? 1 : 0);
