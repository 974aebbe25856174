// Set members in the one form nft accepts and prints back, so that read-back compares strings.
// - ip: dotted quads without leading zeros (the schema lets "010" through; nft would refuse it).
// - net: an interval set refuses overlapping elements (ipset's hash:net took them), so the CIDRs
//   are merged into disjoint blocks first; host bits are masked as the kernel would; /32 is printed
//   as a bare address.
// - ipPort: "IP,tcp:80" becomes the concatenation "IP . tcp . 80".
import type { IPSetKind } from '../../../crds/types.ts';
import { formatIPv4, intervalToCidrs, mergeIntervals, parseCidr, parseIPv4, type Interval } from '../../../runtime/ipv4.ts';

// Member lists are values shared between specs (an unchanged set keeps its array), so a member
// change converts only the lists it touched.
const memo = new WeakMap<readonly string[], { kind: IPSetKind; elements: string[] }>();

export function setElements(kind: IPSetKind, members: readonly string[]): string[] {
  const hit = memo.get(members);
  if (hit?.kind === kind) return hit.elements;
  const elements = kind === 'net' ? netElements(members) : unique(members.map(kind === 'ip' ? address : ipPortElement));
  memo.set(members, { kind, elements });
  return elements;
}

/** nft's form of an address; a malformed one throws (the agent's validation lets none through). */
export function address(text: string): string {
  if (!LEADING_ZERO.test(text) && CANONICAL.test(text)) return text;
  const n = parseIPv4(text);
  if (n === undefined) throw new Error(`"${text}" is not an IPv4 address`);
  return formatIPv4(n);
}

const CANONICAL = /^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$/;
const LEADING_ZERO = /(^|\.)0\d/;

function ipPortElement(member: string): string {
  const m = /^([^,]+),(tcp|udp|sctp):(\d{1,5})$/.exec(member);
  const port = Number(m?.[3]);
  if (!m || port < 1 || port > 65535) throw new Error(`"${member}" is not an IP,protocol:port member`);
  return `${address(m[1])} . ${m[2]} . ${port}`;
}

function netElements(members: readonly string[]): string[] {
  const intervals: Interval[] = members.map((m) => {
    const c = parseCidr(m);
    if (!c.ok) throw new Error(`"${m}" is not an IPv4 CIDR`);
    return c.interval;
  });
  // Adjacent blocks merge too: one canonical form for one address range.
  return mergeIntervals(intervals).flatMap(intervalToCidrs).map((c) => (c.endsWith('/32') ? c.slice(0, -3) : c));
}

function unique(list: string[]): string[] {
  const seen = new Set(list);
  return seen.size === list.length ? list : [...seen];
}
