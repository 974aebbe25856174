// Whole-object checks an agent runs before touching the kernel: a CompiledPolicySet that is
// schema-valid but nonsensical or harmful (edited by hand, or by something hostile) is rejected
// whole, and the last good state stays enforced.
import { schemaErrors } from '../crds/schema.ts';
import type { CompiledPolicySet, CompiledPolicySetSpec, IPSetKind } from '../crds/types.ts';
import { ipInInterval, parseCidr, parseIPv4 } from '../operator/compile/ipv4.ts';

export interface ValidationLimits { maxEntries: number; maxRules: number }

export const DEFAULT_LIMITS: ValidationLimits = { maxEntries: 1_000_000, maxRules: 100_000 };

const MEMBER_SYNTAX: Record<IPSetKind, RegExp> = {
  ip: /^\d{1,3}(\.\d{1,3}){3}$/,
  net: /^\d{1,3}(\.\d{1,3}){3}\/([1-9]|[12]\d|3[0-2])$/,
  ipPort: /^\d{1,3}(\.\d{1,3}){3},(tcp|udp|sctp):\d{1,5}$/,
};

/** Every reason the object must not be applied; empty when it may be. */
export function validateCps(cps: CompiledPolicySet, nodeName: string, limits = DEFAULT_LIMITS): string[] {
  const errors = schemaErrors(cps).map((e) => `schema: ${e}`);
  if (errors.length) return errors;
  return validateSpec(cps.spec, nodeName, limits);
}

export function validateSpec(spec: CompiledPolicySetSpec, nodeName: string, limits = DEFAULT_LIMITS): string[] {
  const errors: string[] = [];
  if (spec.nodeName !== nodeName) errors.push(`spec.nodeName is "${spec.nodeName}", this agent enforces node "${nodeName}"`);
  const sets = new Map(spec.ipSets.map((s) => [s.name, s]));
  if (sets.size !== spec.ipSets.length) errors.push('spec.ipSets: a set name appears twice');
  const entries = spec.ipSets.reduce((n, s) => n + s.members.length, 0);
  if (entries > limits.maxEntries) errors.push(`spec.ipSets: ${entries} entries exceed the limit of ${limits.maxEntries}`);
  for (const set of spec.ipSets) {
    const bad = set.members.find((m) => !MEMBER_SYNTAX[set.kind].test(m) || parseIPv4(m.split(/[/,]/)[0]) === undefined);
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
        const where = `spec.targets[${i}].${dir}.rules[${j}]`;
        for (const p of r.peers) if (!sets.has(p) || sets.get(p)!.kind === 'ipPort') errors.push(`${where}: peer set "${p}" is missing or not an address set`);
        for (const port of r.ports) {
          if (port.namedPortSet && sets.get(port.namedPortSet)?.kind !== 'ipPort') errors.push(`${where}: named port set "${port.namedPortSet}" is missing or not an ipPort set`);
          if (port.endPort !== undefined && (port.port === undefined || port.endPort < port.port)) errors.push(`${where}: endPort ${port.endPort} without a lower port at or below it`);
        }
      }
    }
  }
  if (rules > limits.maxRules) errors.push(`spec.targets: ${rules} rules exceed the limit of ${limits.maxRules}`);
  return errors.slice(0, 20);
}
