// Every kernel object Fencer owns carries this prefix; nothing without it is ever changed, except
// the single FORWARD jump, which is inserted and deleted by its full text.
import { createHash } from 'node:crypto';

export const PREFIX = 'FENCER-';
export const CHAIN_FORWARD = 'FENCER-FORWARD';
export const CHAIN_INGRESS = 'FENCER-INGRESS';
export const CHAIN_EGRESS = 'FENCER-EGRESS';
export const COMMENT_PREFIX = 'fencer:';

/** The rule in FORWARD that hands NEW connections to Fencer; replies never reach Fencer's chains. */
export const FORWARD_JUMP = ['-m', 'conntrack', '--ctstate', 'NEW', '-m', 'comment', '--comment', `${COMMENT_PREFIX}forward-hook`, '-j', CHAIN_FORWARD];

/** The chain of one target's rules; `podSet` is the CPS id `t-<16 hex>` (chain names stop at 28 chars). */
export function targetChain(direction: 'ingress' | 'egress', podSet: string): string {
  return `${PREFIX}${direction === 'ingress' ? 'I' : 'E'}-${podSet.slice(2)}`;
}

/**
 * The two kernel names a CPS set may have. A set whose members change together with the rules is
 * built under the other name, so one iptables-restore switches every reference at once.
 */
export function setNames(id: string): [string, string] {
  const base = `${PREFIX}${id}`;
  return [base, `${base}-1`];
}

export function ruleHash(chain: string, position: number, body: string): string {
  return createHash('sha256').update(`${chain}\u0000${position}\u0000${body}`).digest('hex').slice(0, 16);
}
