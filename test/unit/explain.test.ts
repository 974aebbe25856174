// fencer explain, the pure part: for every scenario file, after every step, for every pod pair and
// every probe, the explanation's verdict is the oracle's (and the compiled evaluator's), and so are
// the rules it names; its wording is pinned by golden files (UPDATE_GOLDEN=1 rewrites them).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import type { CompiledPolicySetSpec } from '../../crds/types.ts';
import { CompiledEvaluator } from '../../matrix/evaluate-compiled.ts';
import { loadScenario } from '../../matrix/scenario.ts';
import { ScenarioWorld } from '../../matrix/world.ts';
import type { ClusterSnapshot } from '../../model/cluster.ts';
import { PolicyCompiler } from '../../operator/compile/compiler.ts';
import { explain } from '../../inspect/explain.ts';
import { formatExplanation } from '../../inspect/explain-text.ts';
import { InspectError } from '../../inspect/errors.ts';

const SCENARIOS = 'test/scenarios';
const GOLDEN = 'test/golden/explain';

function worldAfter(file: string, steps: number): { snapshot: ClusterSnapshot; specs: Map<string, CompiledPolicySetSpec> } {
  const scenario = loadScenario(file);
  const world = new ScenarioWorld(scenario);
  scenario.steps.slice(0, steps).forEach((s, i) => world.applyStep(s, `steps[${i}]`));
  const snapshot = world.snapshot();
  return { snapshot, specs: PolicyCompiler.compile(snapshot) };
}

const sorted = (list: Array<{ policy: string; index: number }>) => list.map((r) => `${r.policy}#${r.index}`).sort();

test('explain agrees with the oracle and the compiled evaluator for every pod pair and probe of every scenario, after every step', () => {
  const files = readdirSync(SCENARIOS).filter((f) => f.endsWith('.yaml')).sort();
  assert.ok(files.length >= 40, `only ${files.length} scenario files`);
  let checked = 0;
  for (const file of files) {
    const scenario = loadScenario(`${SCENARIOS}/${file}`);
    const world = new ScenarioWorld(scenario);
    const compiler = new PolicyCompiler();
    compiler.recompile(world.initialChanges().flatMap((c) => [...compiler.applyChange(c)]));
    scenario.steps.forEach((step, i) => {
      compiler.recompile(world.applyStep(step, `steps[${i}]`).flatMap((c) => [...compiler.applyChange(c)]));
      const snapshot = world.snapshot();
      const specs = compiler.current();
      const evaluator = new CompiledEvaluator(specs.values());
      const ports = scenario.probes.map((p) => `${p.port}/${p.protocol}`);
      for (const src of world.livePods()) for (const dst of world.livePods()) {
        const where = `${file} step ${i + 1} ${src.key} -> ${dst.key}`;
        const e = explain({ snapshot, specs, from: src.key, to: dst.key, ports, origin: 'manifests' });
        assert.equal(e.ports.length, scenario.probes.length, where);
        for (const p of e.ports) {
          const at = `${where} ${p.port}`;
          assert.ok(p.agrees, `${at}: explain and the oracle disagree\n${formatExplanation(e)}`);
          assert.equal(p.allowed, p.oracleAllowed, at);
          assert.equal(p.allowed, evaluator.allows({ srcIP: src.ip, dstIP: dst.ip, protocol: p.protocol, port: p.number }), `${at}: compiled evaluator`);
          if (src.key === dst.key) continue;
          for (const d of [p.egress, p.ingress]) {
            assert.equal(d.isolated, d.oracle.isolated, `${at} ${d.direction}: isolated`);
            assert.deepEqual([...d.selectedBy].sort(), [...d.oracle.selectedBy].sort(), `${at} ${d.direction}: selecting policies`);
            assert.deepEqual(sorted(d.allowedBy), sorted(d.oracle.allowedBy), `${at} ${d.direction}: allowing rules`);
            if (!d.allowed) assert.ok(d.notMatching.every((r) => r.why !== ''), `${at} ${d.direction}: every rule says why it does not match`);
          }
          checked++;
        }
      }
    });
  }
  assert.ok(checked > 5000, `only ${checked} flows checked`);
});

// Each golden case: scenario, steps applied, then the flows to explain (from, to, port).
const GOLDEN_CASES: Array<{ name: string; file: string; steps: number; flows: Array<[string, string, string?]> }> = [
  { name: 'ingress-from-pod', file: '05-ingress-x-a-from-pod-b.yaml', steps: 1, flows: [['x/b', 'x/a', '80/TCP'], ['x/c', 'x/a', '80/TCP'], ['y/b', 'x/a', '81/UDP'], ['x/a', 'x/b', '80/TCP']] },
  { name: 'stacked-policies', file: '13-stacked-policies-union.yaml', steps: 2, flows: [['y/a', 'x/a', '80/TCP'], ['z/a', 'x/a', '81/TCP'], ['y/b', 'x/a']] },
  { name: 'egress-ipblock', file: '25-egress-ipblock-except.yaml', steps: 1, flows: [['x/a', 'x/c', '80/TCP'], ['x/a', 'y/b', '80/TCP'], ['x/a', '10.244.1.200', '443/TCP'], ['192.0.2.7', 'x/a', '80/TCP']] },
  { name: 'aks-walkthrough', file: '50-aks-walkthroughs.yaml', steps: 3, flows: [['development/frontend', 'development/backend', '80/TCP'], ['production/frontend', 'development/backend', '80/TCP'], ['development/backend', 'development/backend', '80/TCP']] },
];

for (const c of GOLDEN_CASES) {
  test(`explain wording: ${c.name} (golden file)`, () => {
    const { snapshot, specs } = worldAfter(`${SCENARIOS}/${c.file}`, c.steps);
    const text = c.flows.map(([from, to, port]) => {
      const e = explain({ snapshot, specs, from, to, ports: port ? [port] : undefined, origin: 'manifests' });
      return `$ fencer explain --from ${from} --to ${to}${port ? ` --port ${port}` : ''}   # ${c.file} after step ${c.steps}\n${formatExplanation(e)}`;
    }).join('\n');
    const path = `${GOLDEN}/${c.name}.txt`;
    if (process.env.UPDATE_GOLDEN === '1' || !existsSync(path)) writeFileSync(path, text);
    assert.equal(text, readFileSync(path, 'utf8'), `${path} differs (UPDATE_GOLDEN=1 rewrites it after a deliberate wording change)`);
  });
}

test('explain reports a disagreement between the compiled rules and the oracle', () => {
  const { snapshot, specs } = worldAfter(`${SCENARIOS}/05-ingress-x-a-from-pod-b.yaml`, 1);
  // A compiler bug, simulated: node-1's spec loses the rule that admits x/b.
  const broken = new Map([...specs].map(([node, spec]) => [node, { ...spec, targets: spec.targets.map((t) => ({ ...t, ingress: t.ingress && { rules: [] } })) }]));
  const e = explain({ snapshot, specs: broken, from: 'x/b', to: 'x/a', ports: ['80/TCP'], origin: 'manifests' });
  assert.equal(e.agrees, false);
  assert.equal(e.ports[0].allowed, false);
  assert.equal(e.ports[0].oracleAllowed, true);
  const text = formatExplanation(e);
  assert.match(text, /MISMATCH: the oracle says allowed: egress not isolated; ingress isolated by x\/allow-b, allowed by x\/allow-b ingress rule 0/);
  assert.match(text, /THE ORACLE DISAGREES/);
  assert.match(text, /this is a bug in Fencer/);
});

test('explain defaults to every port the destination declares, and resolves named ports', () => {
  const { snapshot, specs } = worldAfter(`${SCENARIOS}/05-ingress-x-a-from-pod-b.yaml`, 1);
  const all = explain({ snapshot, specs, from: 'x/b', to: 'x/a', origin: 'manifests' });
  assert.deepEqual(all.ports.map((p) => p.port), ['80/TCP', '80/UDP', '80/SCTP', '81/TCP', '81/UDP', '81/SCTP']);
  const named = explain({ snapshot, specs, from: 'x/b', to: 'x/a', ports: ['serve-81-udp/UDP', '81', 'udp/80'], origin: 'manifests' });
  assert.deepEqual(named.ports.map((p) => [p.port, p.name]), [['81/UDP', 'serve-81-udp'], ['81/TCP', 'serve-81-tcp'], ['80/UDP', 'serve-80-udp']]);
});

test('explain errors name what exists', () => {
  const { snapshot, specs } = worldAfter(`${SCENARIOS}/05-ingress-x-a-from-pod-b.yaml`, 1);
  const fails = (from: string, to: string, ports: string[] | undefined, message: RegExp) =>
    assert.throws(() => explain({ snapshot, specs, from, to, ports, origin: 'manifests' }), (e: unknown) => e instanceof InspectError && message.test(e.message));
  fails('x/q', 'x/a', undefined, /^no pod x\/q; pods in x: a, b, c$/);
  fails('x/a', 'w/a', undefined, /^no pod w\/a: there is no namespace w; namespaces: x, y, z$/);
  fails('a', 'x/a', undefined, /^--from a: expected NAMESPACE\/POD or an IPv4 address$/);
  fails('x/a', '192.0.2.1', undefined, /192\.0\.2\.1 is not a pod, so it declares no ports: give the port to explain, e\.g\. --port 80\/TCP/);
  fails('x/a', 'x/b', ['http'], /--port http: x\/b has no TCP port named "http"; its named ports: serve-80-tcp \(80\/TCP\), serve-80-udp/);
  fails('x/a', 'x/b', ['70000'], /--port 70000: 70000 is not a port number/);
  fails('x/a', 'x/b', ['80/ICMP'], /unknown protocol "ICMP"/);
  const missing = new Map([...specs].filter(([n]) => n !== 'node-1'));
  assert.throws(() => explain({ snapshot, specs: missing, from: 'x/b', to: 'x/a', ports: ['80'], origin: 'cluster' }),
    /no CompiledPolicySet for node node-1 \(the destination x\/a runs there\): the operator has not compiled it yet/);
  assert.throws(() => explain({ snapshot, specs: missing, from: 'x/b', to: 'x/a', ports: ['80'], origin: 'manifests' }),
    /the manifests have no Node node-1; add it/);
});

test('explain: pods without an address, hostNetwork pods and finished pods', () => {
  const { snapshot, specs } = worldAfter(`${SCENARIOS}/03-deny-all-x.yaml`, 1);
  const pod = (name: string, extra: Record<string, unknown>) => ({ apiVersion: 'v1', kind: 'Pod', metadata: { namespace: 'y', name }, spec: { nodeName: 'node-1', containers: [{ name: 'c', image: 'i' }] }, ...extra });
  snapshot.pods.push(
    pod('pending', { status: { phase: 'Pending' } }),
    pod('done', { status: { phase: 'Succeeded', podIP: '10.244.1.250' } }),
    { ...pod('host', { status: { phase: 'Running', podIP: '172.18.0.5', hostIP: '172.18.0.5' } }), spec: { nodeName: 'node-1', hostNetwork: true, containers: [] } },
  );
  assert.throws(() => explain({ snapshot, specs, from: 'y/pending', to: 'x/a', ports: ['80'], origin: 'manifests' }), /pod y\/pending has no IP address yet \(phase Pending, node node-1\)/);
  assert.throws(() => explain({ snapshot, specs, from: 'y/done', to: 'x/a', ports: ['80'], origin: 'manifests' }), /pod y\/done has finished \(phase Succeeded\)/);
  const e = explain({ snapshot, specs, from: 'y/host', to: 'x/a', ports: ['80'], origin: 'manifests' });
  assert.ok(e.agrees);
  assert.equal(e.allowed, false);
  assert.match(e.ports[0].egress.summary, /uses the host network \(Fencer enforces no policy on hostNetwork pods/);
  const self = explain({ snapshot, specs, from: 'x/a', to: 'x/a', ports: ['80'], origin: 'manifests' });
  assert.ok(self.allowed && self.samePod && self.agrees);
  assert.match(self.ports[0].ingress.summary, /traffic from a pod to itself is never filtered/);
});
