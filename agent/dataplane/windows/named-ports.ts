// Named ports on HNS, which has no (IP, port) set type: an ipPort set's "IP,proto:port" members become the
// resolved port of each local endpoint (ingress: the destination is the endpoint itself) or, for egress,
// derived IPSETs of the destination IPs that serve one port.
import { createHash } from 'node:crypto';
import type { IPSet, Protocol } from '../../../crds/types.ts';
import { ipInInterval, parseCidr, parseIPv4, type Interval } from '../../../runtime/ipv4.ts';
import { PREFIX } from './hns-types.ts';

export interface IpPortMember { ip: string; protocol: Protocol; port: number }

const MEMBER = /^(\d{1,3}(?:\.\d{1,3}){3}),(tcp|udp|sctp):(\d{1,5})$/;

export function parseIpPort(member: string): IpPortMember | undefined {
  const m = MEMBER.exec(member);
  if (!m || parseIPv4(m[1]) === undefined) return undefined;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return undefined;
  return { ip: m[1], protocol: m[2].toUpperCase() as Protocol, port };
}

/** The ports a named-port set resolves to on one local pod, for one protocol, ascending. */
export function portsOf(members: IpPortMember[], ip: string, protocol: Protocol): number[] {
  const ports = members.filter((m) => m.ip === ip && m.protocol === protocol).map((m) => m.port);
  return [...new Set(ports)].sort((a, b) => a - b);
}

/** The destination IPs serving each port of one protocol, ports ascending, IPs in member order. */
export function ipsByPort(members: IpPortMember[], protocol: Protocol): Map<number, string[]> {
  const out = new Map<number, string[]>();
  for (const m of members) {
    if (m.protocol !== protocol) continue;
    const ips = out.get(m.port) ?? [];
    if (!ips.includes(m.ip)) ips.push(m.ip);
    out.set(m.port, ips);
  }
  return new Map([...out.entries()].sort(([a], [b]) => a - b));
}

/** A deterministic set policy Id for a derived set (named-port set × peers × protocol × port). */
export function derivedSetId(parts: string[]): string {
  return `${PREFIX}x-${createHash('sha256').update(parts.join('\u0000')).digest('hex').slice(0, 16)}`;
}

/** Membership of an address in a CPS address set (ip: exact; net: CIDR containment). */
export function addressMatcher(set: IPSet): (ip: string) => boolean {
  if (set.kind === 'ip') {
    const members = new Set(set.members);
    return (ip) => members.has(ip);
  }
  const intervals = set.members.map(parseCidr).flatMap((c) => (c.ok ? [c.interval] : [] as Interval[]));
  return (ip) => {
    const n = parseIPv4(ip);
    return n !== undefined && intervals.some((i) => ipInInterval(n, i));
  };
}
