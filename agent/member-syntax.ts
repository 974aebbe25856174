// What a set member of each kind must look like before it goes near `ipset restore`.
import type { IPSetKind } from '../crds/types.ts';
import { parseIPv4 } from '../runtime/ipv4.ts';

const MEMBER_SYNTAX: Record<IPSetKind, RegExp> = {
  ip: /^\d{1,3}(\.\d{1,3}){3}$/,
  net: /^\d{1,3}(\.\d{1,3}){3}\/([1-9]|[12]\d|3[0-2])$/,
  ipPort: /^\d{1,3}(\.\d{1,3}){3},(tcp|udp|sctp):\d{1,5}$/,
};

/** True when `member` is not a valid member of a set of this kind. */
export function memberProblem(kind: IPSetKind, member: string): boolean {
  const syntax = MEMBER_SYNTAX[kind];
  return !syntax || typeof member !== 'string' || !syntax.test(member) || parseIPv4(member.split(/[/,]/)[0]) === undefined;
}
