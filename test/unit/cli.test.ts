import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as yaml from 'js-yaml';
import type { AddressSet } from '../../crds/address-set.ts';
import type { CompiledPolicySet } from '../../crds/types.ts';

const fencer = (...args: string[]) => spawnSync(process.execPath, ['cli/main.ts', ...args], { encoding: 'utf8' });

test('fencer compile prints one CompiledPolicySet per node and the AddressSets they name', () => {
  const split = yaml.loadAll(execFileSync(process.execPath, ['cli/main.ts', 'compile', '-f', 'test/fixtures/cluster'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })) as Array<CompiledPolicySet | AddressSet>;
  const [node, ...sets] = split as [CompiledPolicySet, ...AddressSet[]];
  assert.equal(node.kind, 'CompiledPolicySet');
  assert.ok(sets.length > 0 && sets.every((s) => s.kind === 'AddressSet'));
  assert.deepEqual(node.spec.sharedSets!.map((r) => r.name).sort(), [...new Set(sets.map((s) => s.spec.set))].sort());
  const out = execFileSync(process.execPath, ['cli/main.ts', 'compile', '--full', '-f', 'test/fixtures/cluster'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const docs = yaml.loadAll(out) as CompiledPolicySet[];
  assert.equal(docs.length, 1);
  assert.equal(docs[0].kind, 'CompiledPolicySet');
  assert.equal(docs[0].metadata.name, 'node-1');
  assert.deepEqual(docs[0].spec.targets[0].pods, ['shop/db']);
  const named = docs[0].spec.ipSets.find((s) => s.kind === 'ipPort')!;
  assert.deepEqual(named.members, ['10.244.1.5,tcp:5432']);
});

test('fencer compile names a missing path and exits 2', () => {
  const r = fencer('compile', '-f', 'test/fixtures/nowhere');
  assert.equal(r.status, 2);
  assert.match(r.stderr, /test\/fixtures\/nowhere: no such file or directory/);
});

test('fencer matrix exits 1 on a differing grid and marks the differing cell', () => {
  const r = fencer('matrix', 'test/fixtures/scenarios/wrong-grid.yaml');
  assert.equal(r.status, 1);
  assert.match(r.stdout, /MISMATCH in 1 cell\(s\): x\/b→x\/a/);
  assert.match(r.stdout, /x\/b +X +\. +x\/b +\.\*/);
});

test('fencer matrix exits 2 on an invalid file, naming the file, the field and the reason', () => {
  const r = fencer('matrix', '--oracle', 'test/fixtures/scenarios/bad-probe.yaml');
  assert.equal(r.status, 2);
  assert.match(r.stderr, /bad-probe\.yaml: probes\[0\]: "ICMP\/0" is not PROTOCOL\/PORT/);
});

test('every scenario under test/scenarios passes on the compiled rules and on the oracle', () => {
  const files = execFileSync('sh', ['-c', 'ls test/scenarios/*.yaml'], { encoding: 'utf8' }).trim().split('\n');
  assert.ok(files.length >= 33);
  for (const mode of [[], ['--oracle']]) {
    const r = fencer('matrix', ...mode, ...files);
    assert.equal(r.status, 0, r.stdout.split('\n').filter((l) => l.includes('MISMATCH')).join('\n') + r.stderr);
  }
});
