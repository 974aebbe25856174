import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import type { CompiledPolicySetSpec, IPSet, Rule } from '../../crds/types.ts';
import { loadScenario } from '../../matrix/scenario.ts';
import { translateSpec, type HnsDesired } from '../../agent/dataplane/windows/translate.ts';
import { evaluateEndpoint } from '../../agent/dataplane/windows/evaluate.ts';
import type { AclPolicy } from '../../agent/dataplane/windows/hns-types.ts';
import { scenarioSpecs } from '../helpers/scenario-specs.ts';

// UPDATE_GOLDEN=1 rewrites the files; review the diff like any other change.
function golden(name: string, actual: string): void {
  const path = `test/golden/windows/${name}.json`;
  if (process.env.UPDATE_GOLDEN) writeFileSync(path, actual);
  assert.equal(actual, readFileSync(path, 'utf8'), `${path} differs (UPDATE_GOLDEN=1 to accept)`);
}

function render(t: HnsDesired): object {
  return { setPolicies: t.setPolicies, endpoints: Object.fromEntries(t.endpoints), diagnostics: t.diagnostics };
}

function lastStep(file: string): Map<string, CompiledPolicySetSpec> {
  return scenarioSpecs(file, loadScenario(file).steps.length);
}

for (const file of readdirSync('test/scenarios').filter((f) => f.endsWith('.yaml')).sort()) {
  const name = file.replace(/\.yaml$/, '');
  test(`scenario ${name} after its last step renders the golden HNS objects`, () => {
    const nodes = Object.fromEntries([...lastStep(`test/scenarios/${file}`)].map(([node, spec]) => [node, render(translateSpec(spec))]));
    golden(name, `${JSON.stringify(nodes, null, 2)}\n`);
  });
}

/** A one-target spec built by hand: pod 10.244.1.10 with the given ingress/egress rules and sets. */
function spec(sets: IPSet[], ingress?: Rule[], egress?: Rule[]): CompiledPolicySetSpec {
  const pods: IPSet = { name: 't-1', kind: 'ip', origin: 'local pods', members: ['10.244.1.10'] };
  return {
    nodeName: 'node-1', contentHash: 'sha256:0', podCIDRs: ['10.244.1.0/24'], policies: ['x/p'], ipSets: [pods, ...sets],
    targets: [{ podSet: 't-1', pods: ['x/a'], policies: ['x/p'], ...(ingress ? { ingress: { rules: ingress } } : {}), ...(egress ? { egress: { rules: egress } } : {}) }],
    diagnostics: [], counts: { policies: 1, rules: 1, sets: sets.length + 1, entries: 0, pods: 1 },
  };
}

function rule(fields: Partial<Rule>): Rule {
  return { id: 'r-1', policy: 'x/p', index: 0, anyPeer: true, peers: [], anyPort: true, ports: [], ...fields };
}

const acls = (t: HnsDesired, ip = '10.244.1.10'): AclPolicy[] => t.endpoints.get(ip) ?? [];
const rulesOf = (t: HnsDesired) => acls(t).filter((a) => a.Id === 'fencer-r-1');

test('a rule whose peer sets are all empty emits no ACL (an empty RemoteAddresses would mean ANY), and the pod stays isolated', () => {
  const empty: IPSet = { name: 'p-empty', kind: 'ip', origin: 'no pods', members: [] };
  const t = translateSpec(spec([empty], [rule({ anyPeer: false, peers: ['p-empty'] })]));
  assert.deepEqual(rulesOf(t), []);
  assert.deepEqual(t.setPolicies, []);
  const deny = acls(t).find((a) => a.Direction === 'In' && a.Action === 'Block');
  assert.equal(deny?.Priority, 4000);
  const verdict = evaluateEndpoint(acls(t), 'In', { src: '10.244.2.99', dst: '10.244.1.10', protocol: 'TCP', port: 80 }, new Map());
  assert.equal(verdict.verdict, 'block');
});

test('an empty peer set is left out of a rule that has other peers; no set policy is ever empty', () => {
  const empty: IPSet = { name: 'p-empty', kind: 'ip', origin: 'no pods', members: [] };
  const full: IPSet = { name: 'p-full', kind: 'ip', origin: 'pods', members: ['10.244.2.10'] };
  const t = translateSpec(spec([empty, full], [rule({ anyPeer: false, peers: ['p-empty', 'p-full'] })]));
  assert.deepEqual(rulesOf(t).map((a) => a.LocalAddresses), ['fencer-p-full']);
  assert.deepEqual(t.setPolicies.map((s) => [s.Id, s.Values]), [['fencer-p-full', '10.244.2.10']]);
});

test('a rule with no ports (anyPort false, ports []) emits no ACL rather than one with empty ports', () => {
  const t = translateSpec(spec([], [rule({ anyPort: false, ports: [] })]));
  assert.deepEqual(rulesOf(t), []);
});

test('port ranges become "first-last" in the destination port field; a one-port range is a plain port', () => {
  const t = translateSpec(spec([], [rule({ anyPort: false, ports: [{ protocol: 'TCP', port: 80, endPort: 90 }, { protocol: 'UDP', port: 53, endPort: 53 }] })], [rule({ anyPort: false, ports: [{ protocol: 'SCTP', port: 1000, endPort: 2000 }] })]));
  assert.deepEqual(rulesOf(t).map((a) => [a.Direction, a.Protocols, a.LocalPorts, a.RemotePorts]), [['In', '17', '53', undefined], ['In', '6', '80-90', undefined], ['Out', '132', undefined, '1000-2000']]);
});

test('an ingress named port becomes each endpoint\'s own resolved port; an endpoint it does not resolve on gets no ACL for it', () => {
  const named: IPSet = { name: 'n-web', kind: 'ipPort', origin: 'port web', members: ['10.244.1.10,tcp:8080', '10.244.1.11,tcp:9090'] };
  const s = spec([named], [rule({ anyPort: false, ports: [{ protocol: 'TCP', namedPortSet: 'n-web' }] })]);
  s.ipSets[0].members.push('10.244.1.11', '10.244.1.12');
  const t = translateSpec(s);
  assert.deepEqual(rulesOf(t).map((a) => [a.Protocols, a.LocalPorts]), [['6', '8080']]);
  assert.deepEqual(acls(t, '10.244.1.11').filter((a) => a.Id === 'fencer-r-1').map((a) => a.LocalPorts), ['9090']);
  assert.deepEqual(acls(t, '10.244.1.12').filter((a) => a.Id === 'fencer-r-1'), []);
});

test('an egress named port becomes one derived IPSET per port, restricted to the rule\'s peers', () => {
  const named: IPSet = { name: 'n-web', kind: 'ipPort', origin: 'port web', members: ['10.244.2.10,tcp:80', '10.244.2.11,tcp:80', '10.244.2.12,tcp:81', '10.0.0.1,udp:80'] };
  const peers: IPSet = { name: 'p-some', kind: 'net', origin: 'block', members: ['10.244.2.10/31'] };
  const t = translateSpec(spec([named, peers], undefined, [rule({ anyPeer: false, peers: ['p-some'], anyPort: false, ports: [{ protocol: 'TCP', namedPortSet: 'n-web' }] })]));
  const out = rulesOf(t);
  assert.equal(out.length, 1, 'port 81 is served by no peer: no ACL');
  assert.equal(out[0].RemotePorts, '80');
  const derived = t.setPolicies.find((s) => s.Id === out[0].RemoteAddresses);
  assert.equal(derived?.Values, '10.244.2.10,10.244.2.11');
});

test('ipBlock except reaches HNS as the CIDRs left after subtraction', () => {
  const t = [...lastStep('test/scenarios/25-egress-ipblock-except.yaml').values()].map((s) => translateSpec(s)).find((x) => x.setPolicies.length)!;
  const values = t.setPolicies.map((s) => s.Values).join(',');
  assert.ok(!values.includes('0.0.0.0/0'));
  const acl = [...t.endpoints.values()][0].find((a) => a.Direction === 'Out' && a.Action === 'Allow' && a.RemoteAddresses)!;
  const sets = new Map(t.setPolicies.map((s) => [s.Id, s]));
  const spec25 = [...lastStep('test/scenarios/25-egress-ipblock-except.yaml').values()].find((s) => s.ipSets.some((x) => x.kind === 'net'))!;
  const net = spec25.ipSets.find((x) => x.kind === 'net')!;
  assert.equal(sets.get(acl.RemoteAddresses!)?.Values, net.members.join(','));
});

test('the node\'s own addresses are allowed In ahead of every rule, through a set policy', () => {
  const t = translateSpec(spec([], [rule({ anyPeer: false, peers: [] })]), { hostIPs: ['10.0.0.4'] });
  const host = acls(t).find((a) => a.Id === 'fencer-host')!;
  assert.deepEqual([host.Action, host.Direction, host.Priority, host.LocalAddresses], ['Allow', 'In', 200, 'fencer-node']);
  assert.deepEqual(t.setPolicies, [{ Id: 'fencer-node', Name: 'node addresses', PolicyType: 'IPSET', Values: '10.0.0.4' }]);
});

test('with SCTP disabled an SCTP port match allows nothing and a diagnostic says so', () => {
  const t = translateSpec(spec([], [rule({ anyPort: false, ports: [{ protocol: 'SCTP', port: 81 }, { protocol: 'TCP', port: 81 }] })]), { sctp: false });
  assert.deepEqual(rulesOf(t).map((a) => a.Protocols), ['6']);
  assert.match(t.diagnostics[0], /SCTP is disabled/);
});

test('the In peer field follows the option; Out always names peers in RemoteAddresses', () => {
  const peers: IPSet = { name: 'p-a', kind: 'ip', origin: 'pods', members: ['10.244.2.10'] };
  const both = [rule({ anyPeer: false, peers: ['p-a'] })];
  const local = rulesOf(translateSpec(spec([peers], both, both)));
  const remote = rulesOf(translateSpec(spec([peers], both, both), { ingressPeerField: 'RemoteAddresses' }));
  assert.deepEqual(local.map((a) => [a.Direction, a.LocalAddresses, a.RemoteAddresses]), [['In', 'fencer-p-a', undefined], ['Out', undefined, 'fencer-p-a']]);
  assert.deepEqual(remote.map((a) => [a.Direction, a.LocalAddresses, a.RemoteAddresses]), [['In', undefined, 'fencer-p-a'], ['Out', undefined, 'fencer-p-a']]);
});

test('a spec with compressed member lists is refused rather than read as empty sets', () => {
  const s = spec([{ name: 'p-z', kind: 'ip', origin: 'pods', members: [], membersGzip: 'H4sI' }]);
  assert.throws(() => translateSpec(s), /expanded spec/);
});
