// Every kernel object Fencer owns carries this prefix; nothing without it is ever changed, except
// the single FORWARD jump, which is inserted and deleted by its full text.
import { createHash } from 'node:crypto';

export const PREFIX = 'FENCER-';
/** The entry point; its first rule is a goto to the live generation's FENCER-TOP. */
export const CHAIN_FORWARD = 'FENCER-FORWARD';
// Base names; every chain but FENCER-FORWARD exists in two generations (see chainName).
export const CHAIN_TOP = 'FENCER-TOP';
export const CHAIN_INGRESS = 'FENCER-INGRESS';
export const CHAIN_EGRESS = 'FENCER-EGRESS';
export const COMMENT_PREFIX = 'fencer:';

/** The rule in FORWARD that hands NEW connections to Fencer; replies never reach Fencer's chains. */
export const FORWARD_JUMP = ['-m', 'conntrack', '--ctstate', 'NEW', '-m', 'comment', '--comment', `${COMMENT_PREFIX}forward-hook`, '-j', CHAIN_FORWARD];

/**
 * Which copy of the chain tree. A rule change writes the whole tree under the other generation's
 * names and points FENCER-FORWARD at it by inserting one goto ahead of the old one: that commit only
 * adds, and a commit that deletes waits for the kernel to free what it replaced (10–20 ms with nft).
 * The old generation is deleted after the apply reports.
 */
export type Generation = 0 | 1;

export function chainName(base: string, generation: Generation): string {
  return generation === 1 ? `${base}-1` : base;
}

/** No base name ends in "-1" (target chains end in hex digits). */
export function chainGeneration(name: string): Generation {
  return name.endsWith('-1') ? 1 : 0;
}

/** The chain of one target's rules; `podSet` is the CPS id `t-<16 hex>` (chain names stop at 28 chars). */
export function targetChain(direction: 'ingress' | 'egress', podSet: string, generation: Generation = 0): string {
  return chainName(`${PREFIX}${direction === 'ingress' ? 'I' : 'E'}-${podSet.slice(2)}`, generation);
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
