// The inspect commands through the CLI, offline (-f DIR) and without a cluster: exit codes, JSON,
// and the error messages a user sees when something is missing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as yaml from 'js-yaml';
import { loadScenario } from '../../matrix/scenario.ts';
import { ScenarioWorld } from '../../matrix/world.ts';
import type { Explanation } from '../../inspect/explain.ts';

const dir = mkdtempSync(join(tmpdir(), 'fencer-explain-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

/** A scenario's cluster after some steps, written as manifests (one file per kind). */
function manifests(file: string, steps: number, extra: object[] = []): string {
  const scenario = loadScenario(file);
  const world = new ScenarioWorld(scenario);
  scenario.steps.slice(0, steps).forEach((s, i) => world.applyStep(s, `steps[${i}]`));
  const snap = world.snapshot();
  const out = mkdtempSync(join(dir, 'm-'));
  writeFileSync(join(out, 'cluster.yaml'), [...snap.nodes, ...snap.namespaces, ...snap.pods, ...extra].map((o) => yaml.dump(o)).join('---\n'));
  writeFileSync(join(out, 'policies.yaml'), snap.policies.map((o) => yaml.dump(o)).join('---\n') || '{}\n');
  return out;
}

const env = { ...process.env, HOME: dir, KUBECONFIG: '', KUBERNETES_SERVICE_HOST: '', FENCER_SANDBOX_STATE: join(dir, 'no-sandbox.json') };
const fencer = (...args: string[]) => spawnSync(process.execPath, ['cli/main.ts', ...args], { encoding: 'utf8', env });

const deny = manifests('test/scenarios/05-ingress-x-a-from-pod-b.yaml', 1, [
  { apiVersion: 'v1', kind: 'Pod', metadata: { namespace: 'y', name: 'lost' }, spec: { nodeName: 'node-9', containers: [{ name: 'c', image: 'i', ports: [{ containerPort: 80 }] }] }, status: { phase: 'Running', podIP: '10.244.9.10' } },
]);

test('fencer explain -f: exit 0 when allowed, 1 when denied, with the rule in words', () => {
  const ok = fencer('explain', '--from', 'x/b', '--to', 'x/a', '--port', '80/TCP', '-f', deny);
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /ingress to x\/a on node-1: allowed by x\/allow-b ingress rule 0: from pods with pod=b in namespace x, any port/);
  assert.match(ok.stdout, /verdict: allowed \(the oracle agrees\)/);
  const no = fencer('explain', '--from', 'y/b', '--to', 'x/a', '-p', '80', '-f', deny);
  assert.equal(no.status, 1, no.stderr);
  assert.match(no.stdout, /denied by default: selected by x\/allow-b and no rule allows it/);
  assert.match(no.stdout, /does not match: the source y\/b \(10\.244\.\d+\.\d+\) is not among its peers/);
});

test('fencer explain -o json, and several ports', () => {
  const r = fencer('explain', '--from', 'y/b', '--to', 'x/a', '-p', '80/TCP', '-p', '81/UDP', '-f', deny, '-o', 'json');
  assert.equal(r.status, 1, r.stderr);
  const e = JSON.parse(r.stdout) as Explanation;
  assert.deepEqual(e.ports.map((p) => [p.port, p.allowed, p.agrees]), [['80/TCP', false, true], ['81/UDP', false, true]]);
  assert.deepEqual(e.ports[0].ingress.selectedBy, ['x/allow-b']);
  assert.equal(e.ports[0].ingress.notMatching[0].policy, 'x/allow-b');
  assert.equal(e.ports[0].ingress.notMatching[0].index, 0);
  assert.equal(e.destination.node, 'node-1');
});

test('fencer explain names unknown pods and namespaces, and the pods there are', () => {
  const r = fencer('explain', '--from', 'x/q', '--to', 'x/a', '-f', deny);
  assert.equal(r.status, 2);
  assert.equal(r.stderr, 'error: no pod x/q; pods in x: a, b, c\n');
  const ns = fencer('explain', '--from', 'x/a', '--to', 'nope/a', '-f', deny);
  assert.equal(ns.stderr, 'error: no pod nope/a: there is no namespace nope; namespaces: x, y, z\n');
  const bad = fencer('explain', '--from', 'x/a', '--to', 'a', '-f', deny);
  assert.equal(bad.stderr, 'error: --to a: expected NAMESPACE/POD or an IPv4 address\n');
});

test('fencer explain: a node without a CompiledPolicySet, and a destination without ports', () => {
  const r = fencer('explain', '--from', 'x/a', '--to', 'y/lost', '-f', deny);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /^error: no CompiledPolicySet for node node-9 \(the destination y\/lost runs there\): the manifests have no Node node-9; add it/);
  const ip = fencer('explain', '--from', 'x/a', '--to', '192.0.2.1', '-f', deny);
  assert.match(ip.stderr, /192\.0\.2\.1 is not a pod, so it declares no ports: give the port to explain, e\.g\. --port 80\/TCP/);
});

test('fencer explain, show and status without a kubeconfig say how to give one', () => {
  for (const args of [['explain', '--from', 'x/a', '--to', 'x/b'], ['show', 'node-1'], ['status']]) {
    const r = fencer(...args);
    assert.equal(r.status, 2, args.join(' '));
    assert.match(r.stderr, /^error: no kubeconfig: pass --kubeconfig FILE, set KUBECONFIG, or create ~\/\.kube\/config/);
  }
  const missing = fencer('status', '--kubeconfig', join(dir, 'nope.yaml'));
  assert.equal(missing.stderr, `error: kubeconfig ${join(dir, 'nope.yaml')}: no such file\n`);
});

test('fencer status against an unreachable apiserver names the server', () => {
  const kc = join(dir, 'kubeconfig');
  writeFileSync(kc, yaml.dump({
    apiVersion: 'v1', kind: 'Config', 'current-context': 'x',
    clusters: [{ name: 'c', cluster: { server: 'https://127.0.0.1:39999', 'insecure-skip-tls-verify': true } }],
    users: [{ name: 'u', user: { token: 't' } }],
    contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
  }));
  const r = fencer('status', '--kubeconfig', kc);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /^error: cannot reach the apiserver at https:\/\/127\.0\.0\.1:39999 \(ECONNREFUSED\) while reading nodes/);
});

test('fencer show -f prints the sets and each target\'s rules in order', () => {
  const dir13 = manifests('test/scenarios/13-stacked-policies-union.yaml', 2);
  const r = fencer('show', 'node-1', '-f', dir13);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^CompiledPolicySet node-1 {2}\(content hash [0-9a-f]{12}\)/);
  assert.match(r.stdout, /FENCER-p-[0-9a-f]{16} +ip +3 +pods with any labels in namespaces with ns=y/);
  assert.match(r.stdout, /TARGET 1 \(t-[0-9a-f]{16}\): x\/a/);
  assert.match(r.stdout, /1 +x\/allow-80-from-y +ingress\[0\] +pods with any labels in namespaces with ns=y +80\/TCP\n +2 +x\/allow-81-from-y +ingress\[0\] +pods with any labels in namespaces with ns=y +81\/TCP/);
  const unknown = fencer('show', 'node-9', '-f', dir13);
  assert.equal(unknown.status, 2);
  assert.equal(unknown.stderr, 'error: no node node-9 in the manifests; nodes: node-1, node-2\n');
});

test('fencer verify: no sandbox, no such network namespace', () => {
  const sandbox = fencer('verify', 'node-1', '--sandbox');
  assert.equal(sandbox.status, 2);
  assert.match(sandbox.stderr, /^error: no sandbox is running \(.*no-sandbox\.json does not exist\): start one with `fencer sandbox`, or give --netns NAME/);
  const netns = fencer('verify', 'node-1', '--netns', 'fencer-no-such-netns', '-f', deny);
  assert.equal(netns.status, 2);
  assert.match(netns.stderr, /^error: no network namespace fencer-no-such-netns/);
});

test('bin/fencer runs as kubectl-fencer', () => {
  const r = spawnSync('sh', ['-c', `ln -sf "$PWD/bin/fencer" "${dir}/kubectl-fencer" && "${dir}/kubectl-fencer" explain --from x/b --to x/a -p 80 -f "${deny}"`], { encoding: 'utf8', env });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /verdict: allowed/);
});
