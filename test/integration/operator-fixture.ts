// Shared by the operator's integration tests: uniquely named cluster objects that clean up after
// themselves, an in-process operator with short timings, and the yardstick every test compares
// with: `PolicyCompiler.compile` of the very objects the apiserver holds.
import assert from 'node:assert/strict';
import { after, before } from 'node:test';
import { randomBytes } from 'node:crypto';
import {
  ApiException,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  NetworkingV1Api,
  type KubeConfig,
  type V1NetworkPolicy,
} from '@kubernetes/client-node';
import { ASET_PLURAL, type AddressSet, type AddressSetSpec } from '../../crds/address-set.ts';
import { expandSpec } from '../../crds/codec.ts';
import { agentSetSelectors } from '../../crds/consumers.ts';
import { membersFromShards, resolveSharedSets } from '../../crds/resolve.ts';
import { sortEntries } from '../../operator/compile/members.ts';
import { CPS_GROUP, CPS_PLURAL, CPS_VERSION, type CompiledPolicySet, type CompiledPolicySetSpec } from '../../crds/types.ts';
import type { ClusterSnapshot } from '../../model/cluster.ts';
import { PolicyCompiler } from '../../operator/compile/compiler.ts';
import { startOperator, type OperatorHandle } from '../../operator/operator.ts';
import { MANAGED_BY_LABEL } from '../../operator/cps-object.ts';
import type { OperatorOptionsInput } from '../../operator/options.ts';
import { counterTotal } from '../../operator/metrics.ts';
import { createLogger, silentLogger } from '../../runtime/log.ts';
import { kubelet, type Kubelet, type PodSpec } from '../../localcluster/kubelet.ts';
import { testCluster } from './env.ts';
import { clusterApi, clusterSnapshot, type Kube } from '../../localcluster/cluster-api.ts';

export const cpsApi = { group: CPS_GROUP, version: CPS_VERSION, plural: CPS_PLURAL };
export const run = randomBytes(3).toString('hex');

/** Lease timings for tests: a crashed leader is replaced within about 2.5 s. */
export const FAST_LEASE = { durationMs: 2000, renewMs: 300, retryMs: 300, renewDeadlineMs: 1400 };

type Cleanup = { after(fn: () => Promise<void> | void): void };

export { clusterSnapshot, type Kube };

export function kube(kc = testCluster().kubeConfig()): Kube {
  return clusterApi(kc);
}

let podCidrCounter = 0;
const secondOctet = 100 + (parseInt(run, 16) % 100);

/** A test's own world: every name carries the test's label and the run id; all of it is deleted after the test. */
export class World {
  readonly kube: Kube;
  readonly label: string;
  readonly nodes: string[] = [];
  private readonly cleanups: Array<() => Promise<unknown> | unknown> = [];

  constructor(t: Cleanup, label: string, kubeApi = kube()) {
    this.label = label;
    this.kube = kubeApi;
    // Last made, first removed: operators stop before their namespaces and nodes go.
    t.after(async () => {
      for (const cleanup of this.cleanups.reverse()) await cleanup();
    });
  }

  name(base: string): string {
    return `op-${this.label}-${base}-${run}`;
  }

  async namespace(base: string, labels: Record<string, string> = {}): Promise<string> {
    const name = this.name(base);
    this.cleanups.push(() => this.kube.k.deleteNamespace(name));
    await this.kube.k.createNamespace(name, labels);
    return name;
  }

  async node(base: string): Promise<string> {
    const name = this.name(base);
    this.cleanups.push(async () => {
      await this.kube.k.deleteNode(name);
      await deleteCps(this.kube.custom, name);
    });
    await this.kube.k.createNode(name, `10.${secondOctet}.${podCidrCounter++ % 256}.0/24`);
    this.nodes.push(name);
    return name;
  }

  pod(spec: PodSpec): Promise<unknown> {
    return this.kube.k.createPod(spec);
  }

  policy(namespace: string, body: V1NetworkPolicy): Promise<V1NetworkPolicy> {
    return this.kube.net.createNamespacedNetworkPolicy({ namespace, body });
  }

  /** An operator for this test, stopped (lease released) when the test ends. */
  async operator(overrides: OperatorOptionsInput = {}): Promise<OperatorHandle> {
    const handle = await startOperator({
      kubeConfig: this.kube.kc,
      leaseName: this.name('lease'),
      identity: `${this.label}-${randomBytes(2).toString('hex')}`,
      metricsPort: 0,
      metricsHost: '127.0.0.1',
      lease: FAST_LEASE,
      log: testLogger(),
      // These tests run no agents: the Pending mark goes on at once, so they can assert it.
      pendingAfterMs: 0,
      ...overrides,
    });
    this.cleanups.push(async () => {
      await handle.stop();
      const { namespace, leaseName } = handle.options;
      await this.kube.kc.makeApiClient(CoordinationV1Api).deleteNamespacedLease({ namespace, name: leaseName }).catch(() => undefined);
    });
    return handle;
  }
}

export function testLogger() {
  return process.env.FENCER_TEST_LOG ? createLogger('fencer-operator', process.env.FENCER_TEST_LOG) : silentLogger();
}

/** What each node's CompiledPolicySet should carry (shared sets by name only). */
export async function expectedSpecs(api: Kube): Promise<Map<string, CompiledPolicySetSpec>> {
  return PolicyCompiler.loaded(await clusterSnapshot(api)).nodeSpecs();
}

/** What each node should enforce, every set in full. */
export async function expectedFullSpecs(api: Kube): Promise<Map<string, CompiledPolicySetSpec>> {
  return PolicyCompiler.compile(await clusterSnapshot(api));
}

export async function listAddressSets(custom: CustomObjectsApi): Promise<Map<string, AddressSet>> {
  const list = (await custom.listClusterCustomObject({ group: CPS_GROUP, version: CPS_VERSION, plural: ASET_PLURAL })) as { items: AddressSet[] };
  return new Map(list.items.map((o) => [o.metadata.name, o]));
}

/** AddressSet writes by this operator (creates, updates, deletes). */
export function setWrites(op: OperatorHandle): Promise<number> {
  return counterTotal(op.metrics.asetWrites, { name: 'result', values: ['created', 'updated', 'deleted'] });
}

/** The AddressSet shards the agent of `node` receives (the agent's own selectors). */
export async function shardsFor(custom: CustomObjectsApi, node: string): Promise<AddressSetSpec[]> {
  const lists = await Promise.all(agentSetSelectors(node).map((labelSelector) =>
    custom.listClusterCustomObject({ group: CPS_GROUP, version: CPS_VERSION, plural: ASET_PLURAL, labelSelector }) as Promise<{ items: AddressSet[] }>));
  return [...new Map(lists.flatMap((l) => l.items).map((o) => [o.metadata.name, o.spec])).values()];
}

/** A node's spec with its shared sets filled in from the shards its agent receives, every member list sorted. */
export async function resolvedFor(custom: CustomObjectsApi, spec: CompiledPolicySetSpec): Promise<CompiledPolicySetSpec | string> {
  const shards = await shardsFor(custom, spec.nodeName);
  const resolved = resolveSharedSets(expandSpec(spec), (ref) => {
    const found = membersFromShards(ref, shards);
    return 'missing' in found ? found : { members: found.members };
  });
  if (resolved.missing) return `shared sets not whole for ${spec.nodeName}: ${resolved.missing.join('; ')}`;
  return sortedMembers(resolved.spec);
}

/** Revisions are stamped as the operator writes (which shard versions a spec was written against), never compiled. */
export function withoutRevisions(spec: CompiledPolicySetSpec): CompiledPolicySetSpec {
  if (!spec.sharedSets) return spec;
  for (const r of spec.sharedSets) assert.match(r.revision ?? '', /^\d+$/, `${spec.nodeName}: set ${r.name} is named without the revision it was written against`);
  return { ...spec, sharedSets: spec.sharedSets.map(({ revision: _, ...ref }) => ref) };
}

/** Shards concatenate in shard order; the compiler sorts each list: compare as sorted lists. */
export function sortedMembers(spec: CompiledPolicySetSpec): CompiledPolicySetSpec {
  return { ...spec, ipSets: spec.ipSets.map((s) => ({ ...s, members: sortEntries([...s.members]) })) };
}

export async function getCps(custom: CustomObjectsApi, name: string): Promise<CompiledPolicySet | undefined> {
  try {
    return (await custom.getClusterCustomObject({ ...cpsApi, name })) as CompiledPolicySet;
  } catch (e) {
    if (e instanceof ApiException && e.code === 404) return undefined;
    throw e;
  }
}

export async function deleteCps(custom: CustomObjectsApi, name: string): Promise<void> {
  try {
    await custom.deleteClusterCustomObject({ ...cpsApi, name });
  } catch (e) {
    if (!(e instanceof ApiException && e.code === 404)) throw e;
  }
}

export async function listCps(custom: CustomObjectsApi): Promise<Map<string, CompiledPolicySet>> {
  const list = (await custom.listClusterCustomObject({ ...cpsApi })) as { items: CompiledPolicySet[] };
  return new Map(list.items.map((o) => [o.metadata.name, o]));
}

export async function waitFor<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 15_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Why the nodes' CompiledPolicySets differ from the compile of the cluster, or undefined when they match. */
export async function divergence(api: Kube, nodes: string[]): Promise<string | undefined> {
  const [expected, full, actual] = await Promise.all([expectedSpecs(api), expectedFullSpecs(api), listCps(api.custom)]);
  for (const node of nodes) {
    const want = expected.get(node);
    const have = actual.get(node);
    if (!want) return `node ${node} is not in the compile`;
    if (!have) return `no CompiledPolicySet for ${node}`;
    if (have.spec.contentHash !== want.contentHash) return `${node}: hash ${have.spec.contentHash} != ${want.contentHash}`;
    try {
      assert.deepEqual(withoutRevisions(expandSpec(have.spec)), want);
    } catch (e) {
      return `${node}: same hash, different spec: ${(e as Error).message}`;
    }
    const enforced = await resolvedFor(api.custom, have.spec);
    if (typeof enforced === 'string') return enforced;
    try {
      assert.deepEqual(enforced, sortedMembers(full.get(node)!));
    } catch (e) {
      return `${node}: the spec with the AddressSets its agent receives differs from the compile: ${(e as Error).message}`;
    }
  }
  return undefined;
}

/** Waits until every node's CompiledPolicySet equals the compile of the cluster as it is now. */
export async function converged(api: Kube, nodes: string[], timeoutMs = 15_000): Promise<Map<string, CompiledPolicySet>> {
  let why: string | undefined;
  await waitFor(`CompiledPolicySets of ${nodes.join(', ')} to match the compile`, async () => {
    why = await divergence(api, nodes);
    return why === undefined;
  }, timeoutMs, 100).catch((e: Error) => assert.fail(`${e.message} (last difference: ${why})`));
  return listCps(api.custom);
}

/** Waits until the operator is leader (or not) and has nothing left to do. */
export function settled(op: OperatorHandle, leader = true): Promise<true> {
  return waitFor('the operator to settle', async () => op.isLeader() === leader && op.idle(), 20_000, 20);
}

/** Spec and status writes an operator has made (conflicts and errors not counted). */
export function writes(op: OperatorHandle): Promise<number> {
  return counterTotal(op.metrics.cpsWrites, { name: 'result', values: ['created', 'updated', 'deleted', 'status'] });
}

export async function scrape(op: OperatorHandle, path: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${op.httpPort}${path}`);
  return { status: res.status, body: await res.text() };
}

/**
 * Installs the CRD before a file's tests and afterwards deletes the managed CompiledPolicySets they
 * created (operators here also write CPS for nodes other test files left behind).
 */
export function cpsTestHooks(): { readonly api: Kube } {
  const state = {} as { api: Kube; preexisting: Set<string> };
  before(async () => {
    await testCluster().installCrds();
    state.api = kube();
    state.preexisting = new Set((await listCps(state.api.custom)).keys());
  });
  after(async () => {
    for (const [name, cps] of await listCps(state.api.custom)) {
      if (!state.preexisting.has(name) && cps.metadata.labels?.[MANAGED_BY_LABEL] === 'fencer') await deleteCps(state.api.custom, name);
    }
  });
  return state;
}
