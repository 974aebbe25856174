// No injection into iptables/ipset or nft: whatever users put in names, namespaces, labels and port
// names, the restore payloads and the nft script hold only hashes, ids, addresses and numbers
// (bench/compiler-fuzz.ts's grammar for the payloads, NFT_LINE below for the script);
// a CompiledPolicySet carrying text where the payload would take it is rejected by validation; kernel
// tools run from argument vectors, never a shell; names that would collide once shortened do not.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { V1NetworkPolicy } from '@kubernetes/client-node';
import { ExecRunner } from '../../agent/dataplane/linux/runner.ts';
import { planApply } from '../../agent/dataplane/linux/plan.ts';
import { renderTable } from '../../agent/dataplane/nftables/render.ts';
import { desiredState } from '../../agent/dataplane/nftables/translate.ts';
import { validateCps } from '../../agent/validate.ts';
import { cpsObject } from '../../operator/cps-object.ts';
import type { CompiledPolicySet, CompiledPolicySetSpec } from '../../crds/types.ts';
import { CompiledEvaluator } from '../../matrix/evaluate-compiled.ts';
import type { ClusterSnapshot } from '../../model/cluster.ts';
import { PolicyCompiler } from '../../operator/compile/compiler.ts';
import { oracleAllows } from '../../oracle/oracle.ts';
import { LONG_KEY, LONG_VALUE, payloadProblems } from '../../bench/compiler-fuzz.ts';
import { recordRow } from '../faults/report.ts';

const runs = Number(process.env.FENCER_PROPERTY_RUNS ?? 1000);

// Every character the API allows in each place.
const alnum = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
const lower = 'abcdefghijklmnopqrstuvwxyz0123456789';
const word = (chars: string, inner: string, max: number) => fc.tuple(fc.constantFrom(...chars), fc.string({ unit: fc.constantFrom(...inner), maxLength: max - 2 }), fc.constantFrom(...chars))
  .map(([a, mid, b]) => `${a}${mid}${b}`);
const labelName = word(alnum, `${alnum}-_.`, 63);
const labelValue = fc.oneof(fc.constant(''), labelName);
const dnsLabel = word(lower, `${lower}-`, 63);
const subdomain = fc.array(dnsLabel.map((l) => l.slice(0, 20)), { minLength: 1, maxLength: 4 }).map((ls) => ls.join('.'));
const labelKey = fc.oneof(labelName, fc.tuple(subdomain, labelName).map(([p, n]) => `${p}/${n}`));
const portName = word(lower, `${lower}-`, 15).filter((n) => /[a-z]/.test(n) && !n.includes('--'));

/** Text that must never reach a restore payload: quotes, newlines, options, shell syntax. */
const HOSTILE = ['x" -j ACCEPT #', 'a\nCOMMIT\n*filter', '-A FORWARD -j ACCEPT', '$(reboot)', '`id`', "'; rm -rf / #", 'FENCER-p-0000000000000000', 'a b', '%s%n', '\u0000nul'];

const injectionCluster: fc.Arbitrary<ClusterSnapshot> = fc.record({
  ns: fc.uniqueArray(dnsLabel, { minLength: 2, maxLength: 2 }),
  keys: fc.uniqueArray(labelKey, { minLength: 2, maxLength: 3 }),
  values: fc.uniqueArray(labelValue, { minLength: 2, maxLength: 3 }),
  port: portName,
  podNames: fc.uniqueArray(subdomain, { minLength: 3, maxLength: 3 }),
  policyName: subdomain,
}).map(({ ns, keys, values, port, podNames, policyName }) => {
  const pods = podNames.map((name, i) => ({
    metadata: { namespace: ns[i % 2], name, labels: { [keys[i % keys.length]]: values[i % values.length] } },
    spec: { nodeName: i % 2 ? 'node-2' : 'node-1', containers: [{ name: 'c', image: 'i', ports: [{ name: port, containerPort: 8080 + i, protocol: 'TCP' as const }] }] },
    status: { phase: 'Running', podIP: `10.244.${(i % 2) + 1}.${10 + i}` },
  }));
  const policies: V1NetworkPolicy[] = [{
    metadata: { namespace: ns[0], name: policyName },
    spec: {
      podSelector: { matchExpressions: [{ key: keys[0], operator: 'Exists' }] },
      ingress: [{ from: [{ podSelector: { matchLabels: { [keys[1]]: values[1] } }, namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': ns[1] } } }], ports: [{ port }] } as never],
      egress: [{ to: [{ podSelector: { matchExpressions: [{ key: keys[0], operator: 'In', values }] } }], ports: [{ port, protocol: 'TCP' }] }],
      policyTypes: ['Ingress', 'Egress'],
    },
  }];
  return {
    namespaces: ns.map((n) => ({ metadata: { name: n, labels: { 'kubernetes.io/metadata.name': n } } })),
    nodes: [{ metadata: { name: 'node-1' }, spec: { podCIDR: '10.244.1.0/24' } }, { metadata: { name: 'node-2' }, spec: { podCIDR: '10.244.2.0/24' } }],
    pods,
    policies,
  };
});

function userStrings(c: ClusterSnapshot): string[] {
  const out = new Set<string>();
  for (const o of [...c.namespaces, ...c.pods, ...c.policies]) {
    out.add(o.metadata!.name!);
    for (const [k, v] of Object.entries(o.metadata?.labels ?? {})) out.add(k).add(v);
  }
  for (const p of c.pods) for (const ctr of p.spec!.containers) for (const port of ctr.ports ?? []) if (port.name) out.add(port.name);
  // Short strings (a, 1, tcp …) occur in any payload by chance; what could carry an injection is longer.
  return [...out].filter((s) => s.length >= 6 && !/^[0-9a-f]+$/.test(s));
}

/** What either Linux dataplane hands the kernel for `spec`: ipset and iptables-restore payloads, and the nft script. */
function payloads(spec: CompiledPolicySetSpec): string {
  const plan = planApply(spec, { sets: new Map(), chains: new Map(), forward: [] });
  return `${plan.ipset}${plan.iptables}${renderTable(desiredState(spec))}`;
}

// The nft script's grammar: comments only as Fencer writes them (a hash and an id or a fixed
// label), and outside them nothing but nft's keywords, names made of ids, addresses and numbers.
const NFT_COMMENT = / comment "fencer:[0-9a-f]{16} (?:[a-z]-[0-9a-f]{16}|default deny t-[0-9a-f]{16}|only new connections|egress|ingress)"/g;
const NFT_LINE = /^[\ta-z0-9_.:/ ,{}@;!=<>-]*$/;

function nftProblems(spec: CompiledPolicySetSpec): string[] {
  return renderTable(desiredState(spec)).split('\n').filter((line) => !NFT_LINE.test(line.replace(NFT_COMMENT, ''))).map((line) => `nft line outside the grammar: ${line}`);
}

const figures = { clusters: 0, payloadLines: 0, hostileFieldsRejected: 0, freeTextFieldsInert: 0, collisions: 0 };

test('names, namespaces, labels and port names with every allowed character never reach a restore payload', () => {
  fc.assert(fc.property(injectionCluster, (c) => {
    const specs = PolicyCompiler.compile(c);
    const strings = userStrings(c);
    for (const spec of specs.values()) {
      assert.deepEqual(payloadProblems(spec), []);
      assert.deepEqual(nftProblems(spec), []);
      const text = payloads(spec);
      figures.payloadLines += text.split('\n').length;
      for (const s of strings) assert.ok(!text.includes(s), `"${s}" reached the payload of ${spec.nodeName}`);
    }
    figures.clusters++;
  }), { numRuns: runs });
});

test('hostile text in labels and names (from offline manifests the apiserver would refuse) stays out of the payloads', () => {
  for (const bad of HOSTILE) {
    const c: ClusterSnapshot = {
      namespaces: [{ metadata: { name: `ns-${bad}`, labels: { team: bad } } }],
      nodes: [{ metadata: { name: 'node-1' }, spec: { podCIDR: '10.244.1.0/24' } }],
      pods: [
        { metadata: { namespace: `ns-${bad}`, name: `web-${bad}`, labels: { app: 'web', [`k-${bad}`]: bad } }, spec: { nodeName: 'node-1', containers: [{ name: 'c', image: 'i', ports: [{ name: bad, containerPort: 80 }] }] }, status: { phase: 'Running', podIP: '10.244.1.10' } },
      ],
      policies: [{
        metadata: { namespace: `ns-${bad}`, name: `p-${bad}` },
        spec: { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ from: [{ podSelector: { matchLabels: { [`k-${bad}`]: bad } } }, { namespaceSelector: { matchLabels: { team: bad } } }], ports: [{ port: bad }] } as never] },
      }],
    };
    const spec = PolicyCompiler.compile(c).get('node-1')!;
    assert.deepEqual(payloadProblems(spec), [], JSON.stringify(bad));
    assert.deepEqual(nftProblems(spec), [], JSON.stringify(bad));
    assert.ok(!payloads(spec).includes(bad.trim()), `${JSON.stringify(bad)} reached the payload`);
    // Selectors with such labels are reported and match nothing (fail closed), never half-understood.
    const validLabel = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/.test(bad);
    if (!validLabel) assert.ok(spec.diagnostics.some((d) => /label (key|value)/.test(d.message)), `no diagnostic for ${JSON.stringify(bad)}`);
  }
});

test('a CompiledPolicySet with text where the payload would take it is rejected; free-text fields stay inert', () => {
  const c: ClusterSnapshot = {
    namespaces: [{ metadata: { name: 'x', labels: {} } }],
    nodes: [{ metadata: { name: 'node-1' }, spec: { podCIDR: '10.244.1.0/24' } }],
    pods: [
      { metadata: { namespace: 'x', name: 'web', labels: { app: 'web' } }, spec: { nodeName: 'node-1', containers: [{ name: 'c', image: 'i', ports: [{ name: 'http', containerPort: 80 }] }] }, status: { phase: 'Running', podIP: '10.244.1.10' } },
      { metadata: { namespace: 'x', name: 'client', labels: { role: 'client' } }, spec: { nodeName: 'node-1', containers: [] }, status: { phase: 'Running', podIP: '10.244.1.11' } },
    ],
    policies: [{ metadata: { namespace: 'x', name: 'web' }, spec: { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ from: [{ podSelector: { matchLabels: { role: 'client' } } }, { ipBlock: { cidr: '192.0.2.0/24' } }], ports: [{ port: 'http' }] } as never] } }],
  };
  const good = cpsObject(PolicyCompiler.compile(c).get('node-1')!) as CompiledPolicySet;
  good.metadata.generation = 1;
  assert.deepEqual(validateCps(good, 'node-1'), []);
  const mutations: Array<[string, (s: CompiledPolicySetSpec, bad: string) => void]> = [
    ['a set member', (s, bad) => s.ipSets[0].members.push(`10.0.0.1${bad}`)],
    ['a set name', (s, bad) => { s.ipSets[0].name = `p-${bad}`; }],
    ['a rule id (goes into a comment)', (s, bad) => { s.targets[0].ingress!.rules[0].id = `r-${bad}`; }],
    ['a peer reference', (s, bad) => { s.targets[0].ingress!.rules[0].peers[0] = bad; }],
    ['a target pod set', (s, bad) => { s.targets[0].podSet = bad; }],
    ['a named-port set', (s, bad) => { s.targets[0].ingress!.rules[0].ports[0].namedPortSet = bad; }],
    ['a protocol', (s, bad) => { (s.targets[0].ingress!.rules[0].ports[0] as { protocol: string }).protocol = `TCP${bad}`; }],
    ['a podCIDR', (s, bad) => { s.podCIDRs[0] = `10.244.1.0/24${bad}`; }],
  ];
  for (const bad of HOSTILE) for (const [what, mutate] of mutations) {
    const cps = structuredClone(good);
    mutate(cps.spec, bad);
    assert.notDeepEqual(validateCps(cps, 'node-1'), [], `${what} = ${JSON.stringify(bad)} was accepted`);
    figures.hostileFieldsRejected++;
  }
  // Free text (origins, pod and policy names, diagnostics) is valid in a spec but never used in a payload.
  for (const bad of HOSTILE) {
    const cps = structuredClone(good);
    cps.spec.ipSets.forEach((s) => { s.origin = bad; });
    cps.spec.targets[0].pods = [bad];
    cps.spec.targets[0].policies = [bad];
    cps.spec.policies = [bad];
    cps.spec.diagnostics = [{ policy: bad, message: bad }];
    cps.spec.targets[0].ingress!.rules[0].policy = bad;
    assert.deepEqual(validateCps(cps, 'node-1'), []);
    assert.deepEqual(payloadProblems(cps.spec), []);
    assert.equal(payloads(cps.spec), payloads(good.spec), 'free text changes nothing in the payload');
    figures.freeTextFieldsInert++;
  }
});

test('kernel tools get argument vectors: shell syntax in an argument stays a literal argument', async () => {
  const r = await new ExecRunner().run('printf', ['%s|', 'a b; echo injected', '$(id)', '`id`']);
  assert.equal(r.stdout, 'a b; echo injected|$(id)|`id`|');
});

test('selectors and blocks that share a long prefix never share a set; kernel names fit ipset and iptables limits', () => {
  // 60 selectors whose canonical text shares everything but the last character of a 63-character value,
  // and 60 blocks that differ only in their last octet: each gets its own set, and the oracle agrees.
  const values = Array.from({ length: 60 }, (_, i) => `${LONG_VALUE.slice(0, 61)}${alnum[i]}`);
  const c: ClusterSnapshot = {
    namespaces: [{ metadata: { name: 'x', labels: {} } }],
    nodes: [{ metadata: { name: 'node-1' }, spec: { podCIDR: '10.244.1.0/24' } }],
    pods: values.map((v, i) => ({ metadata: { namespace: 'x', name: `p${i}`, labels: { [LONG_KEY]: v } }, spec: { nodeName: 'node-1', containers: [] }, status: { phase: 'Running', podIP: `10.244.1.${10 + i}` } })),
    policies: values.map((v, i) => ({
      metadata: { namespace: 'x', name: `pol-${i}` },
      spec: { podSelector: { matchLabels: { [LONG_KEY]: v } }, ingress: [{ from: [{ podSelector: { matchLabels: { [LONG_KEY]: values[(i + 1) % values.length] } } }, { ipBlock: { cidr: `192.0.2.${i}/32` } }] } as never] },
    })),
  };
  const spec = PolicyCompiler.compile(c).get('node-1')!;
  const peerSets = new Set(spec.targets.flatMap((t) => t.ingress!.rules.flatMap((r) => r.peers)));
  assert.equal(peerSets.size, 120, 'one set per distinct selector and per distinct block');
  assert.equal(spec.targets.length, 60);
  const plan = planApply(spec, { sets: new Map(), chains: new Map(), forward: [] });
  for (const name of plan.ipset.match(/FENCER-\S+/g) ?? []) assert.ok(name.length <= 31, `ipset name ${name} is over 31 characters`);
  for (const name of plan.iptables.match(/^:(\S+)/gm) ?? []) assert.ok(name.length - 1 <= 28, `chain ${name} is over 28 characters`);
  const evaluator = new CompiledEvaluator([spec]);
  for (let i = 0; i < 60; i++) for (const j of [i + 1, i + 2]) {
    const flow = { srcIP: `10.244.1.${10 + (j % 60)}`, dstIP: `10.244.1.${10 + i}`, protocol: 'TCP' as const, port: 80 };
    assert.equal(evaluator.allows(flow), oracleAllows(c, flow), JSON.stringify(flow));
  }
  figures.collisions = 120 - peerSets.size;

  recordRow({
    id: '09-injection',
    fault: 'injection through names: label keys and values with every allowed character (and hostile text the apiserver would refuse), namespace, pod, policy and port names; 120 selectors and blocks sharing long prefixes',
    injection: `fast-check: ${figures.clusters} random clusters over the API's character sets; ${HOSTILE.length} hostile strings in every user-controlled field; hostile text written into each CompiledPolicySet field that reaches a payload`,
    observed: `every restore payload line (${figures.payloadLines}) within a strict grammar (hash names, ids, addresses, numbers), no user string in any payload; selectors with labels the apiserver would refuse reported and matching nothing; ${figures.hostileFieldsRejected} hostile CompiledPolicySet fields rejected by validation, ${figures.freeTextFieldsInert} free-text variants leave the payload byte-identical; tools run from argument vectors (no shell); ${figures.collisions} set-name collisions among 120 near-identical selectors and blocks`,
    convergeMs: null,
    probes: null,
    statesLost: figures.collisions,
    test: 'test/unit/hostile-injection.test.ts',
  });
});
