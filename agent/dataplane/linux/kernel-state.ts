// Parses what the kernel holds (iptables-save of the filter table, ipset save) into the parts
// Fencer owns. Read-back trusts only Fencer's prefix and its rules' hash comments.
import { CHAIN_FORWARD, PREFIX } from './names.ts';
import { chainHashes, type IpsetType } from './translate.ts';

export interface KernelSet {
  name: string;
  type: IpsetType;
  members: Set<string>;
  /**
   * The member list this set was last made to hold, when Fencer made it (absent when read from the
   * kernel). A list equal to it needs no lookup per member: comparing strings in order is cheaper.
   */
  source?: readonly string[];
}

/** A set Fencer just made to hold `source`; its Set of members is built only if a later diff needs it. */
export function madeSet(name: string, type: IpsetType, source: readonly string[]): KernelSet {
  let members: Set<string> | undefined;
  return { name, type, source, get members() { return (members ??= new Set(source)); } };
}

export interface KernelState {
  sets: Map<string, KernelSet>;
  /** Fencer's chains and their rule lines as iptables-save prints them. */
  chains: Map<string, string[]>;
  /** FORWARD's rules, in order, as printed. */
  forward: string[];
}

export function parseIptablesSave(text: string): Pick<KernelState, 'chains' | 'forward'> {
  const chains = new Map<string, string[]>();
  const forward: string[] = [];
  let inFilter = false;
  for (const line of text.split('\n')) {
    if (line.startsWith('*')) inFilter = line === '*filter';
    if (!inFilter) continue;
    const decl = /^:(\S+) /.exec(line);
    if (decl && decl[1].startsWith(PREFIX)) chains.set(decl[1], []);
    const rule = /^-A (\S+) /.exec(line);
    if (!rule) continue;
    if (rule[1] === 'FORWARD') forward.push(line);
    else if (rule[1].startsWith(PREFIX)) chains.get(rule[1])?.push(line);
  }
  return { chains, forward };
}

export function parseIpsetSave(text: string): Map<string, KernelSet> {
  const sets = new Map<string, KernelSet>();
  for (const line of text.split('\n')) {
    const [verb, name, arg] = line.trim().split(/\s+/);
    if (!name?.startsWith(PREFIX)) continue;
    if (verb === 'create') sets.set(name, { name, type: arg as IpsetType, members: new Set() });
    else if (verb === 'add') sets.get(name)?.members.add(arg);
  }
  return sets;
}

/** Set names referenced by Fencer's current rules. */
const referencedMemo = new WeakMap<Map<string, string[]>, Set<string>>();

export function referencedSets(chains: Map<string, string[]>): Set<string> {
  let out = referencedMemo.get(chains);
  if (out) return out;
  out = new Set<string>();
  for (const lines of chains.values()) for (const l of lines) for (const m of l.matchAll(/--match-set (\S+) /g)) out.add(m[1]);
  referencedMemo.set(chains, out);
  return out;
}

export function forwardJumpIndex(forward: string[]): number {
  return forward.findIndex((l) => l.includes(`-j ${CHAIN_FORWARD}`));
}

export function sameChains(current: Map<string, string[]>, desired: Map<string, string[]>): boolean {
  // The chains of our own last apply come back as the very same object when the rules did not change.
  if (current === desired) return true;
  if (current.size !== desired.size) return false;
  for (const [chain, lines] of desired) {
    const have = current.get(chain);
    if (!have || chainHashes(have).join() !== chainHashes(lines).join()) return false;
  }
  return true;
}
