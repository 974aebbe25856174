import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import type { CompiledPolicySetSpec, IPSet, Rule } from '../../crds/types.ts';
import { loadScenario } from '../../matrix/scenario.ts';
import { desiredState } from '../../agent/dataplane/nftables/translate.ts';
import { renderTable } from '../../agent/dataplane/nftables/render.ts';
import { setElements } from '../../agent/dataplane/nftables/elements.ts';
import { scenarioSpecs } from '../helpers/scenario-specs.ts';

// UPDATE_GOLDEN=1 rewrites the files; review the diff like any other change.
function golden(name: string, actual: string): void {
  const path = `test/golden/nftables/${name}.nft`;
  if (process.env.UPDATE_GOLDEN) writeFileSync(path, actual);
  assert.equal(actual, readFileSync(path, 'utf8'), `${path} differs (UPDATE_GOLDEN=1 to accept)`);
}

function lastStep(file: string): Map<string, CompiledPolicySetSpec> {
  return scenarioSpecs(file, loadScenario(file).steps.length);
}

// Every scenario after its last step, every node: named ports, ipBlock except, endPort ranges,
// SCTP, egress and ingress, empty rule lists, several targets on one node.
for (const file of readdirSync('test/scenarios').filter((f) => f.endsWith('.yaml')).sort()) {
  const name = file.replace(/\.yaml$/, '');
  test(`scenario ${name} after its last step renders the golden nft scripts`, () => {
    const scripts = [...lastStep(`test/scenarios/${file}`)].sort(([a], [b]) => a.localeCompare(b)).map(([node, spec]) => `# ${node}\n${renderTable(desiredState(spec))}`);
    golden(name, scripts.join('\n'));
  });
}

const T = 't-00000000000000a1';
const P = 'p-00000000000000b1';
const N = 'n-00000000000000c1';

/** A one-target spec built by hand: pod 10.244.1.10 with the given ingress/egress rules and sets. */
function spec(sets: IPSet[], ingress?: Rule[], egress?: Rule[], pods = ['10.244.1.10']): CompiledPolicySetSpec {
  const local: IPSet = { name: T, kind: 'ip', origin: 'local pods', members: pods };
  return {
    nodeName: 'node-1', contentHash: `sha256:${'0'.repeat(64)}`, podCIDRs: ['10.244.1.0/24'], policies: ['x/p'], ipSets: [local, ...sets],
    targets: [{ podSet: T, pods: ['x/a'], policies: ['x/p'], ...(ingress ? { ingress: { rules: ingress } } : {}), ...(egress ? { egress: { rules: egress } } : {}) }],
    diagnostics: [], counts: { policies: 1, rules: 1, sets: sets.length + 1, entries: 0, pods: 1 },
  };
}

function rule(id: string, fields: Partial<Rule>): Rule {
  return { id, policy: 'x/p', index: 0, anyPeer: false, peers: [], anyPort: true, ports: [], ...fields };
}

/** A chain's lines in a whole-table script (its hook line included), trimmed. */
function chain(script: string, name: string): string[] {
  const lines = script.split('\n');
  const at = lines.indexOf(`\tchain ${name} {`);
  assert.ok(at >= 0, `no chain ${name}`);
  return lines.slice(at + 1, lines.indexOf('\t}', at)).map((l) => l.trim());
}

test('ingress and egress rules become chains that return on a match and end in drop', () => {
  const script = renderTable(desiredState(spec(
    [{ name: P, kind: 'ip', origin: 'peers', members: ['10.244.2.11'] }, { name: N, kind: 'ipPort', origin: 'named', members: ['10.244.1.10,tcp:8080'] }],
    [
      rule('r-0000000000000001', { peers: [P], anyPort: false, ports: [{ protocol: 'TCP', port: 80, endPort: 90 }, { protocol: 'SCTP' }] }),
      rule('r-0000000000000002', { anyPeer: true, anyPort: false, ports: [{ protocol: 'TCP', namedPortSet: N }, { protocol: 'UDP', port: 53, endPort: 53 }] }),
    ],
    [rule('r-0000000000000003', { peers: [P] })],
  )));
  const ingress = chain(script, `ingress-${T}`).map((l) => l.replace(/ comment ".*"$/, ''));
  assert.deepEqual(ingress, [
    `ip saddr @${P} meta l4proto sctp return`,
    `ip saddr @${P} tcp dport 80-90 return`,
    'udp dport 53 return',
    `meta l4proto tcp ip daddr . meta l4proto . th dport @${N} return`,
    'drop',
  ]);
  assert.deepEqual(chain(script, `egress-${T}`).map((l) => l.replace(/ comment ".*"$/, '')), [`ip daddr @${P} return`, 'drop']);
  assert.match(script, /^\t\t\t10\.244\.1\.10 \. tcp \. 8080$/m);
  assert.match(script, new RegExp(`^\\t\\t\\t10\\.244\\.1\\.10 : jump egress-${T}$`, 'm'));
  assert.match(script, new RegExp(`^\\t\\t\\t10\\.244\\.1\\.10 : jump ingress-${T}$`, 'm'));
  assert.ok(script.startsWith('table inet fencer\ndelete table inet fencer\ntable inet fencer {\n'), 'the script replaces its own table and names no other');
  assert.doesNotMatch(script, /table (ip|ip6|arp|bridge|netdev) |table inet (?!fencer)/);
});

test('rules of a target are folded by peer: ports merged into disjoint ranges per protocol; any port, or any port of a protocol, covers the rest', () => {
  const Q = 'p-00000000000000bb';
  const script = renderTable(desiredState(spec(
    [{ name: P, kind: 'ip', origin: 'peers', members: ['10.244.2.11'] }, { name: Q, kind: 'ip', origin: 'more peers', members: ['10.244.2.12'] }],
    [
      rule('r-0000000000000001', { peers: [P, Q], anyPort: false, ports: [{ protocol: 'TCP', port: 443 }, { protocol: 'TCP', port: 80, endPort: 90 }, { protocol: 'UDP', port: 53 }] }),
      rule('r-0000000000000002', { peers: [P], anyPort: false, ports: [{ protocol: 'TCP', port: 85, endPort: 100 }, { protocol: 'TCP', port: 101 }, { protocol: 'UDP' }] }),
      rule('r-0000000000000003', { peers: [Q], anyPort: false, ports: [{ protocol: 'TCP', port: 8080 }] }),
      rule('r-0000000000000004', { peers: [Q] }),
    ],
  )));
  assert.deepEqual(chain(script, `ingress-${T}`).map((l) => l.replace(/ comment ".*"$/, '')), [
    `ip saddr @${P} meta l4proto udp return`,
    `ip saddr @${P} tcp dport 80-101 return`,
    `ip saddr @${P} tcp dport 443 return`,
    `ip saddr @${Q} return`,
    'drop',
  ]);
  // Folding never widens: every (peer, protocol, port) the rules allow is allowed, nothing else.
  assert.doesNotMatch(script, /dport (79|102)\b|-(79|102)\b/);
  assert.doesNotMatch(script, /dport \{/, 'no anonymous sets');
});

test('empty rule lists deny everything in that direction; a rule whose peers resolved to nothing renders nothing', () => {
  const script = renderTable(desiredState(spec([], [], [rule('r-0000000000000004', { peers: [] })])));
  assert.deepEqual(chain(script, `ingress-${T}`).map((l) => l.replace(/ comment ".*"$/, '')), ['drop']);
  assert.deepEqual(chain(script, `egress-${T}`).map((l) => l.replace(/ comment ".*"$/, '')), ['drop']);
});

test('the same spec renders byte-identical scripts, also from a deep copy, and the dispatch does not grow with pods', () => {
  const pods = Array.from({ length: 200 }, (_, i) => `10.244.1.${i + 2}`);
  const s = spec([{ name: P, kind: 'net', origin: 'cidrs', members: ['10.0.0.0/8'] }], [rule('r-0000000000000005', { peers: [P] })], undefined, pods);
  const a = renderTable(desiredState(s));
  assert.equal(renderTable(desiredState(structuredClone(s))), a);
  assert.equal(renderTable(desiredState(s)), a);
  assert.equal(chain(a, 'forward').length, 4, 'the hook line and three rules, whatever the number of pods');
  assert.equal(chain(a, `ingress-${T}`).length, 2);
});

test('net members become disjoint blocks nft accepts: host bits masked, overlaps and neighbours merged, /32 bare', () => {
  assert.deepEqual(setElements('net', ['10.0.0.128/25', '10.0.0.5/24', '10.0.1.0/24', '192.168.0.7/32', '172.16.0.0/12', '172.16.4.0/24']), ['10.0.0.0/23', '172.16.0.0/12', '192.168.0.7']);
  assert.deepEqual(setElements('net', ['0.0.0.0/1', '128.0.0.0/1']), ['0.0.0.0/1', '128.0.0.0/1'], 'never wider than /1');
  assert.deepEqual(setElements('ip', ['10.244.001.010', '10.244.1.10', '10.244.1.11']), ['10.244.1.10', '10.244.1.11'], 'leading zeros dropped, duplicates once');
  assert.deepEqual(setElements('ipPort', ['10.244.1.10,tcp:080', '10.244.1.10,sctp:9000']), ['10.244.1.10 . tcp . 80', '10.244.1.10 . sctp . 9000']);
  const members = ['10.1.0.0/16'];
  assert.equal(setElements('net', members), setElements('net', members), 'an unchanged member list is converted once');
});

test('an id that is not a CPS id never reaches the script', () => {
  const bad = spec([{ name: 'p-x"; flush ruleset; "', kind: 'ip', origin: 'x', members: [] }], [rule('r-0000000000000006', { peers: ['p-x"; flush ruleset; "'] })]);
  assert.throws(() => desiredState(bad), /not a CompiledPolicySet id/);
});
