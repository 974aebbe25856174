// What a node's agent enforces once its CompiledPolicySet and the AddressSet shards it receives are
// put together, read from the apiserver; and which format a CompiledPolicySet is in (before shared
// sets: every set inline; after: shared sets named in spec.sharedSets).
import { ApiException, CustomObjectsApi, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import { ASET_PLURAL, type AddressSet, type AddressSetSpec } from '../../crds/address-set.ts';
import { expandSpec } from '../../crds/codec.ts';
import { agentSetSelectors, nodeLabel } from '../../crds/consumers.ts';
import { membersFromShards, resolveSharedSets } from '../../crds/resolve.ts';
import { CPS_GROUP, CPS_PLURAL, CPS_VERSION, type CompiledPolicySet, type CompiledPolicySetSpec } from '../../crds/types.ts';
import { sortEntries } from '../../operator/compile/members.ts';
import { ResilientInformer } from '../../runtime/informer.ts';
import { silentLogger } from '../../runtime/log.ts';

const asetApi = { group: CPS_GROUP, version: CPS_VERSION, plural: ASET_PLURAL };
const cpsApi = { group: CPS_GROUP, version: CPS_VERSION, plural: CPS_PLURAL };

/** The AddressSet objects (none while the AddressSet CRD is not installed). */
export async function listAddressSets(kc: KubeConfig, labelSelector?: string): Promise<AddressSet[]> {
  try {
    const list = (await kc.makeApiClient(CustomObjectsApi).listClusterCustomObject({ ...asetApi, labelSelector })) as { items: AddressSet[] };
    return list.items;
  } catch (e) {
    if (e instanceof ApiException && e.code === 404) return [];
    throw e;
  }
}

/** The shards the agent of `node` receives (its own label selectors). */
export async function shardsFor(kc: KubeConfig, node: string): Promise<AddressSetSpec[]> {
  const lists = await Promise.all(agentSetSelectors(node).map((s) => listAddressSets(kc, s)));
  return [...new Map(lists.flat().map((o) => [o.metadata.name, o.spec])).values()];
}

/** Old format: every set inline (no spec.sharedSets); new format: shared sets named in spec.sharedSets. */
export function cpsFormat(cps: CompiledPolicySet): 'inline' | 'shared' {
  return cps.spec.sharedSets?.length ? 'shared' : 'inline';
}

/** Member lists sorted (shards concatenate in shard order), sets by name: for comparing full specs. */
export function sortedMembers(spec: CompiledPolicySetSpec): CompiledPolicySetSpec {
  const ipSets = spec.ipSets.map((s) => ({ ...s, members: sortEntries([...s.members]) })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { ...spec, ipSets };
}

/** A CompiledPolicySet's spec with its shared sets filled in from the shards its agent receives, or why it is not whole. */
export async function resolvedSpec(kc: KubeConfig, cps: CompiledPolicySet): Promise<CompiledPolicySetSpec | string> {
  const spec = expandSpec(cps.spec);
  if (!spec.sharedSets?.length) return sortedMembers(resolveSharedSets(spec, () => ({ missing: 'none named' })).spec!);
  const shards = await shardsFor(kc, spec.nodeName);
  const resolved = resolveSharedSets(spec, (ref) => {
    const found = membersFromShards(ref, shards);
    return 'missing' in found ? found : { members: found.members };
  });
  if (resolved.missing) return `shared sets of ${spec.nodeName} not whole: ${resolved.missing.join('; ')}`;
  return sortedMembers(resolved.spec);
}

/** Deletes the AddressSet shards labelled for any of these nodes (what a test's nodes left behind). */
export async function deleteAddressSetsOf(kc: KubeConfig, nodes: string[]): Promise<number> {
  const custom = kc.makeApiClient(CustomObjectsApi);
  let deleted = 0;
  for (const node of nodes) {
    for (const o of await listAddressSets(kc, nodeLabel(node))) {
      try {
        await custom.deleteClusterCustomObject({ ...asetApi, name: o.metadata.name });
        deleted++;
      } catch (e) {
        if (!(e instanceof ApiException) || e.code !== 404) throw e;
      }
    }
  }
  return deleted;
}

export async function deleteCps(kc: KubeConfig, node: string): Promise<void> {
  try {
    await kc.makeApiClient(CustomObjectsApi).deleteClusterCustomObject({ ...cpsApi, name: node });
  } catch (e) {
    if (!(e instanceof ApiException) || e.code !== 404) throw e;
  }
}

export interface WriteEvent { rv: number; resource: 'cps' | 'aset'; type: 'upsert' | 'delete'; name: string; object: CompiledPolicySet | AddressSet }

/**
 * Every version of every CompiledPolicySet and AddressSet the apiserver serves from now on, in
 * resourceVersion order (one etcd: the revisions of both resources are one sequence), so a test can
 * tell what the shards held when a CompiledPolicySet version naming them was written.
 */
export async function recordWrites(kc: KubeConfig): Promise<{ events: WriteEvent[]; stop(): Promise<WriteEvent[]> }> {
  const custom = kc.makeApiClient(CustomObjectsApi);
  const events: WriteEvent[] = [];
  const informers = ([['cps', cpsApi], ['aset', asetApi]] as const).map(([resource, api]) => {
    const informer = new ResilientInformer<KubernetesObject & (CompiledPolicySet | AddressSet)>({
      name: `record ${api.plural}`, kc, path: `/apis/${api.group}/${api.version}/${api.plural}`, log: silentLogger(),
      list: async () => (await custom.listClusterCustomObject(api)) as never,
    });
    informer.onChange((type, object) => events.push({ rv: Number(object.metadata.resourceVersion), resource, type, name: object.metadata.name, object: object as CompiledPolicySet | AddressSet }));
    return informer;
  });
  await Promise.all(informers.map((i) => i.start()));
  return {
    events,
    async stop() {
      await Promise.all(informers.map((i) => i.stop()));
      return [...events].sort((a, b) => a.rv - b.rv);
    },
  };
}

/**
 * CompiledPolicySet versions (of `nodes`, among `events`) that name a shared set whose shards, at the
 * revision the version was written, were not whole yet, or did not yet hold the members they were to
 * hold (`members`): an agent that read such a version before the shards' next update enforced stale
 * members (or waited).
 */
export function staleNamings(events: WriteEvent[], nodes: string[], members: (set: string) => string[] | undefined, since = 0): string[] {
  const sorted = [...events].sort((a, b) => a.rv - b.rv);
  const shards = new Map<string, AddressSetSpec>();
  const out: string[] = [];
  for (const e of sorted) {
    if (e.resource === 'aset') {
      if (e.type === 'delete') shards.delete(e.name);
      else shards.set(e.name, (e.object as AddressSet).spec);
      continue;
    }
    const cps = e.object as CompiledPolicySet;
    if (e.type !== 'upsert' || e.rv <= since || !nodes.includes(e.name) || !cps.spec?.sharedSets?.length) continue;
    for (const ref of cps.spec.sharedSets) {
      const want = members(ref.name);
      if (!want) continue;
      const have = membersFromShards(ref, [...shards.values()]);
      if ('missing' in have) {
        out.push(`${e.name} generation ${cps.metadata.generation} (rv ${e.rv}) names ${ref.name} (${ref.origin}) before its shards are whole: ${have.missing}`);
        continue;
      }
      const got = sortEntries([...have.members]);
      if (got.join(',') !== sortEntries([...want]).join(',')) {
        const extra = got.filter((m) => !want.includes(m));
        const lacking = want.filter((m) => !got.includes(m));
        out.push(`${e.name} generation ${cps.metadata.generation} (rv ${e.rv}) names ${ref.name} (${ref.origin}) while its shards hold ${extra.length ? `${extra.join(' ')} (removed)` : ''}${lacking.length ? ` without ${lacking.join(' ')}` : ''}`);
      }
    }
  }
  return out;
}
