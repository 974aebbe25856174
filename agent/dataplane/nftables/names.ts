// Everything the nftables dataplane owns lives in one table; nothing outside it is ever read for
// planning or changed. Inside the table, names need no prefix: CPS ids (`p-…`, `n-…`, `t-…`) name
// the sets as they are, and the few fixed names cannot collide with them.
import { createHash } from 'node:crypto';

export const FAMILY = 'inet';
export const TABLE = 'fencer';
/** `inet fencer`, as every nft command names the table. */
export const TABLE_REF = `${FAMILY} ${TABLE}`;

/** The one base chain. */
export const FORWARD_CHAIN = 'forward';

/**
 * After kube-proxy's nftables filter chains (dstnat - 10 = -110), whose rejects of services
 * without endpoints must still answer first, as they do ahead of the iptables backend's FORWARD
 * jump; before iptables-nft's and iptables-legacy's FORWARD (filter = 0), whose accepts cannot
 * override a drop here anyway, so a denied packet costs them nothing. Never exactly 0: chains of
 * equal priority run in the order they were registered, which would change with restarts.
 */
export const FORWARD_PRIORITY = -5;

/** Verdict maps from a local pod's address to its target's chain. */
export const DISPATCH_MAPS = { egress: 'egress-pods', ingress: 'ingress-pods' } as const;

export type Direction = keyof typeof DISPATCH_MAPS;

export const COMMENT_PREFIX = 'fencer:';

/** A CPS id as the schema allows it; anything else never reaches an nft script. */
const CPS_ID = /^[a-z]-[0-9a-f]{16}$/;

export function checkedId(id: string): string {
  if (!CPS_ID.test(id)) throw new Error(`"${id}" is not a CompiledPolicySet id (a-<16 hex>); refusing to put it into an nft script`);
  return id;
}

/** The chain holding one target's rules for one direction. */
export function targetChain(direction: Direction, podSet: string): string {
  return `${direction}-${checkedId(podSet)}`;
}

/** What read-back compares: a rule is identified by its chain, position and text. */
export function ruleHash(chain: string, position: number, body: string): string {
  return createHash('sha256').update(`nft\u0000${chain}\u0000${position}\u0000${body}`).digest('hex').slice(0, 16);
}

/** The hash in a rule's comment, or undefined for a rule Fencer did not write. */
export function commentHash(comment: string | undefined): string | undefined {
  return comment?.startsWith(COMMENT_PREFIX) ? /^fencer:([0-9a-f]{16})( |$)/.exec(comment)?.[1] : undefined;
}
