// nft script text. The whole-table script replaces the table in one transaction: `table` creates
// it if it is missing, so the `delete` that follows never fails, and the new contents are added
// in the same commit — the kernel switches from the old table to the new one at once. Other tables
// are never named.
import type { IPSetKind } from '../../../crds/types.ts';
import { DISPATCH_MAPS, FORWARD_CHAIN, FORWARD_PRIORITY, TABLE_REF } from './names.ts';
import type { Desired } from './translate.ts';

/** The declaration of a set of each kind, as statements inside its braces. */
export const SET_TYPES: Record<IPSetKind, string[]> = {
  ip: ['type ipv4_addr'],
  net: ['type ipv4_addr', 'flags interval'],
  ipPort: ['type ipv4_addr . inet_proto . inet_service'],
};

export const MAP_TYPE = 'type ipv4_addr : verdict';

export const FORWARD_HOOK = `type filter hook forward priority ${FORWARD_PRIORITY}; policy accept;`;

export function renderTable(d: Desired): string {
  const out = [`table ${TABLE_REF}`, `delete table ${TABLE_REF}`, `table ${TABLE_REF} {`];
  for (const s of d.sets) out.push(...block('set', s.name, SET_TYPES[s.kind], s.elements));
  for (const direction of ['egress', 'ingress'] as const) {
    out.push(...block('map', DISPATCH_MAPS[direction], [MAP_TYPE], d.maps[direction].map(mapElement)));
  }
  for (const [chain, rules] of d.chains) {
    out.push(`\tchain ${chain} {`);
    if (chain === FORWARD_CHAIN) out.push(`\t\t${FORWARD_HOOK}`);
    for (const r of rules) out.push(`\t\t${r.text}`);
    out.push('\t}');
  }
  out.push('}');
  return `${out.join('\n')}\n`;
}

function block(kind: 'set' | 'map', name: string, decl: string[], elements: readonly string[]): string[] {
  const out = [`\t${kind} ${name} {`, ...decl.map((l) => `\t\t${l}`)];
  if (elements.length) out.push('\t\telements = {', elementLines(elements, '\t\t\t'), '\t\t}');
  out.push('\t}');
  return out;
}

export function mapElement([ip, chain]: readonly [string, string]): string {
  return `${ip} : jump ${chain}`;
}

/** One element a line: a 100k-member set stays a script nft reads at its usual speed. */
export function elementLines(elements: readonly string[], indent: string): string {
  return elements.map((e) => `${indent}${e}`).join(',\n');
}

/** `add element` / `delete element` for a list, or nothing for an empty one. */
export function elementStatement(verb: 'add' | 'delete', set: string, elements: readonly string[]): string[] {
  return elements.length ? [`${verb} element ${TABLE_REF} ${set} {\n${elementLines(elements, '\t')}\n}`] : [];
}

/** Removes the table and everything in it, and nothing else; succeeds when there is no table. */
export const REMOVE_TABLE = `table ${TABLE_REF}\ndelete table ${TABLE_REF}\n`;
