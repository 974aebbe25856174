// Whole-object checks an agent runs before touching the kernel: a CompiledPolicySet that is
// schema-valid but nonsensical or harmful (edited by hand, or by something hostile) is rejected
// whole, and the last good state stays enforced.
import { resolveSharedSets, type SetLookup } from '../crds/resolve.ts';
import { schemaErrors } from '../crds/schema.ts';
import { expandSpec } from '../crds/codec.ts';
import type { CompiledPolicySet, CompiledPolicySetSpec, IPSet, IPSetKind } from '../crds/types.ts';
import { sameList } from '../runtime/same-list.ts';
import { ipInInterval, parseCidr, parseIPv4 } from '../runtime/ipv4.ts';
import { memberProblem } from './member-syntax.ts';

export interface ValidationLimits { maxEntries: number; maxRules: number }

export const DEFAULT_LIMITS: ValidationLimits = { maxEntries: 1_000_000, maxRules: 100_000 };


/**
 * Member lists of the last accepted spec, by set name. Most changes touch a few sets: an unchanged
 * 100k-entry list is compared in order (about a millisecond) instead of being parsed again (tens).
 */
export class AcceptedMembers {
  private lists = new Map<string, { kind: IPSetKind; members: readonly string[] }>();

  // Asked about the same set object by the schema step and the syntax step: answered once.
  private answers = new WeakMap<IPSet, boolean>();

  has(set: IPSet): boolean {
    // Asked before the schema has judged the object: anything not shaped like a set is not known.
    if (typeof set !== 'object' || set === null || typeof set.name !== 'string' || !Array.isArray(set.members)) return false;
    let answer = this.answers.get(set);
    if (answer === undefined) {
      const known = this.lists.get(set.name);
      answer = !!known && known.kind === set.kind && sameList(known.members, set.members);
      this.answers.set(set, answer);
    }
    return answer;
  }

  /**
   * The spec with every unchanged member list replaced by the very array accepted before: later
   * steps (the dataplane compares lists with what it built its sets from) then see the same array
   * and skip comparing 100k entries again, and the fresh copy becomes garbage at once.
   */
  reuse(spec: CompiledPolicySetSpec): CompiledPolicySetSpec {
    if (!spec.ipSets.some((s) => this.has(s))) return spec;
    return { ...spec, ipSets: spec.ipSets.map((s) => (this.has(s) ? { ...s, members: this.lists.get(s.name)!.members as string[] } : s)) };
  }

  remember(spec: CompiledPolicySetSpec): void {
    this.lists = new Map(spec.ipSets.map((s) => [s.name, { kind: s.kind, members: s.members }]));
    this.answers = new WeakMap();
  }
}

/** Every reason the object must not be applied; empty when it may be. */
export function validateCps(cps: CompiledPolicySet, nodeName: string, limits = DEFAULT_LIMITS): string[] {
  return checkCps(cps, nodeName, limits).errors;
}

/** Where the members of the shared sets a spec names come from (crds/resolve.ts), and which lists were checked on arrival. */
export interface SharedSetSource {
  lookup: SetLookup;
  isChecked(members: string[]): boolean;
}

export interface CpsVerdict {
  errors: string[];
  /** The whole spec, every set in full: set when it may be applied. */
  spec?: CompiledPolicySetSpec;
  /** Shared sets not (wholly) received yet: nothing is wrong, the spec just cannot be enforced yet. */
  waiting?: string[];
}

// Shard events re-check the same CompiledPolicySet object many times: its schema verdict is kept.
const schemaVerdicts = new WeakMap<CompiledPolicySet, string[]>();

/** Validates the object whole (schema, then the expanded spec with its shared sets filled in); `spec` is set when it may be applied. */
export function checkCps(cps: CompiledPolicySet, nodeName: string, limits = DEFAULT_LIMITS, accepted?: AcceptedMembers, sets?: SharedSetSource): CpsVerdict {
  let errors = schemaVerdicts.get(cps);
  if (!errors) schemaVerdicts.set(cps, (errors = schemaErrors(accepted ? withoutAcceptedMembers(cps, accepted) : cps).map((e) => `schema: ${e}`)));
  if (errors.length) return { errors };
  let spec: CompiledPolicySetSpec;
  try {
    spec = expandSpec(cps.spec);
  } catch (e) {
    return { errors: [`spec.ipSets: cannot expand compressed members: ${(e as Error).message}`] };
  }
  if (spec.sharedSets?.length && !sets) return { errors: ['spec.sharedSets: this agent has no source of AddressSets'] };
  const resolved = resolveSharedSets(spec, sets?.lookup ?? (() => ({ missing: 'no source' })));
  if (resolved.missing) return { errors: [], waiting: resolved.missing };
  spec = resolved.spec;
  const problems = validateSpec(spec, nodeName, limits, accepted, sets);
  if (problems.length) return { errors: problems };
  if (!accepted) return { errors: [], spec };
  const reused = accepted.reuse(spec);
  accepted.remember(reused);
  return { errors: [], spec: reused };
}

/** The schema judged these very lists before; it need not walk them again. */
function withoutAcceptedMembers(cps: CompiledPolicySet, accepted: AcceptedMembers): CompiledPolicySet {
  if (!Array.isArray(cps.spec?.ipSets)) return cps;
  return { ...cps, spec: { ...cps.spec, ipSets: cps.spec.ipSets.map((s) => (accepted.has(s) ? { ...s, members: [] } : s)) } };
}

export function validateSpec(spec: CompiledPolicySetSpec, nodeName: string, limits = DEFAULT_LIMITS, accepted?: AcceptedMembers, received?: Pick<SharedSetSource, 'isChecked'>): string[] {
  const errors: string[] = [];
  if (spec.nodeName !== nodeName) errors.push(`spec.nodeName is "${spec.nodeName}", this agent enforces node "${nodeName}"`);
  const sets = new Map(spec.ipSets.map((s) => [s.name, s]));
  if (sets.size !== spec.ipSets.length) errors.push('spec.ipSets: a set name appears twice');
  const entries = spec.ipSets.reduce((n, s) => n + s.members.length, 0);
  if (entries > limits.maxEntries) errors.push(`spec.ipSets: ${entries} entries exceed the limit of ${limits.maxEntries}`);
  for (const set of spec.ipSets) {
    if (accepted?.has(set) || received?.isChecked(set.members)) continue;
    const bad = set.members.find((m) => memberProblem(set.kind, m));
    if (bad !== undefined) errors.push(`spec.ipSets[${set.name}]: "${bad}" is not a valid ${set.kind} member`);
  }
  const cidrs = spec.podCIDRs.map(parseCidr).flatMap((c) => (c.ok ? [c.interval] : []));
  const localIPs = new Set<string>();
  let rules = 0;
  for (const [i, t] of spec.targets.entries()) {
    const podSet = sets.get(t.podSet);
    if (podSet?.kind !== 'ip') {
      errors.push(`spec.targets[${i}].podSet: "${t.podSet}" is not an ip set of this spec`);
      continue;
    }
    for (const ip of podSet.members) {
      if (localIPs.has(ip)) errors.push(`spec.targets[${i}]: pod ${ip} belongs to two targets`);
      localIPs.add(ip);
      const n = parseIPv4(ip);
      if (cidrs.length && (n === undefined || !cidrs.some((c) => ipInInterval(n, c)))) errors.push(`spec.targets[${i}]: pod ${ip} is not in this node's pod CIDRs (${spec.podCIDRs.join(', ')})`);
    }
    for (const dir of ['ingress', 'egress'] as const) {
      for (const [j, r] of (t[dir]?.rules ?? []).entries()) {
        rules++;
        // Built only for an error: 100k rules would otherwise cost 100k strings on every change.
        const where = () => `spec.targets[${i}].${dir}.rules[${j}]`;
        for (const p of r.peers) {
          const kind = sets.get(p)?.kind;
          if (kind === undefined || kind === 'ipPort') errors.push(`${where()}: peer set "${p}" is missing or not an address set`);
        }
        for (const port of r.ports) {
          if (port.namedPortSet && sets.get(port.namedPortSet)?.kind !== 'ipPort') errors.push(`${where()}: named port set "${port.namedPortSet}" is missing or not an ipPort set`);
          if (port.endPort !== undefined && (port.port === undefined || port.endPort < port.port)) errors.push(`${where()}: endPort ${port.endPort} without a lower port at or below it`);
        }
      }
    }
  }
  if (rules > limits.maxRules) errors.push(`spec.targets: ${rules} rules exceed the limit of ${limits.maxRules}`);
  return errors.slice(0, 20);
}
