// Pure planning: from the HNS objects a spec needs and what HNS holds now to the fewest writes.
// Only endpoints whose list of Fencer ACLs changes are written; a set policy is written only when its
// values change; the ACLs of others (the CNI's) are kept as they are.
import { isFencerAcl, sameAcls, type AclPolicy, type SetPolicy } from './hns-types.ts';
import type { HnsDesired } from './translate.ts';

export interface HnsState {
  /** Local endpoints by pod IP: their id and every ACL on them. */
  endpoints: Map<string, { id: string; acls: AclPolicy[] }>;
  /** Fencer's set policies on the network, by Id. */
  sets: Map<string, SetPolicy>;
}

export interface EndpointWrite { ip: string; id: string; before: AclPolicy[]; after: AclPolicy[] }

export interface Plan {
  /** noop: nothing to write; members: set policy values only; rules: some endpoint's ACLs change. */
  kind: 'noop' | 'members' | 'rules';
  createSets: SetPolicy[];
  updateSets: Array<{ set: SetPolicy; before: SetPolicy }>;
  endpointWrites: EndpointWrite[];
  /** Fencer's set policies no ACL will name any more; removed after the ACL writes. */
  removeSets: SetPolicy[];
  /** Pod IPs the spec targets that have no endpoint on this node (yet). */
  missing: string[];
  counts: { rules: number; sets: number; entries: number };
  /** HNS once the plan is applied. */
  after: HnsState;
}

export function planApply(desired: HnsDesired, state: HnsState): Plan {
  const createSets: SetPolicy[] = [];
  const updateSets: Plan['updateSets'] = [];
  for (const set of desired.setPolicies) {
    const have = state.sets.get(set.Id);
    if (!have) createSets.push(set);
    else if (have.Values !== set.Values || have.PolicyType !== set.PolicyType || have.Name !== set.Name) updateSets.push({ set, before: have });
  }
  const wanted = new Set(desired.setPolicies.map((s) => s.Id));
  const removeSets = [...state.sets.values()].filter((s) => !wanted.has(s.Id)).sort((a, b) => (a.Id < b.Id ? -1 : 1));
  const { writes, after } = endpointWrites(desired, state);
  const missing = [...desired.endpoints.keys()].filter((ip) => !state.endpoints.has(ip));
  const kind = writes.length ? 'rules' : createSets.length + updateSets.length + removeSets.length ? 'members' : 'noop';
  return {
    kind, createSets, updateSets, endpointWrites: writes, removeSets, missing,
    counts: {
      rules: [...desired.endpoints.values()].reduce((n, acls) => n + acls.length, 0),
      sets: desired.setPolicies.length,
      entries: desired.setPolicies.reduce((n, s) => n + (s.Values ? s.Values.split(',').length : 0), 0),
    },
    after: { endpoints: after, sets: new Map(desired.setPolicies.map((s) => [s.Id, s])) },
  };
}

function endpointWrites(desired: HnsDesired, state: HnsState): { writes: EndpointWrite[]; after: HnsState['endpoints'] } {
  const writes: EndpointWrite[] = [];
  const after: HnsState['endpoints'] = new Map();
  for (const [ip, ep] of state.endpoints) {
    const want = desired.endpoints.get(ip) ?? [];
    const have = ep.acls.filter(isFencerAcl);
    if (sameAcls(have, want)) {
      after.set(ip, ep);
      continue;
    }
    const next = [...ep.acls.filter((a) => !isFencerAcl(a)), ...want];
    writes.push({ ip, id: ep.id, before: ep.acls, after: next });
    after.set(ip, { id: ep.id, acls: next });
  }
  return { writes, after };
}

/** What applying the plan would change, in words (the drift report). */
export function describePlan(plan: Plan): string[] {
  const out: string[] = [];
  if (plan.createSets.length) out.push(`${plan.createSets.length} set policies missing: ${plan.createSets.map((s) => s.Id).join(', ')}`);
  if (plan.updateSets.length) out.push(`${plan.updateSets.length} set policies hold other values: ${plan.updateSets.map((u) => u.set.Id).join(', ')}`);
  if (plan.endpointWrites.length) out.push(`ACLs differ on ${plan.endpointWrites.length} endpoints: ${plan.endpointWrites.map((w) => w.ip).join(', ')}`);
  if (plan.removeSets.length) out.push(`${plan.removeSets.length} set policies are no longer used: ${plan.removeSets.map((s) => s.Id).join(', ')}`);
  return out;
}
