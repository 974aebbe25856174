// What the kernel's `table inet fencer` holds, read from `nft -j list table inet fencer`, in the
// terms planning compares: set declarations and elements in the form elements.ts writes them, map
// entries, and each chain's hook and the hash comments of its rules (as the iptables backend, read-back
// trusts the hashes; a rule without one counts as a difference). Anything else in the table is noted
// so the next apply rewrites the table whole.
import { commentHash, FAMILY, TABLE } from './names.ts';

export interface LiveSet {
  decl: string;
  elements: Set<string>;
  /**
   * The element list Fencer last wrote to this set (absent when read from the kernel): an equal
   * list then needs no lookup per element, comparing in order is cheaper.
   */
  source?: readonly string[];
}

export interface LiveChain {
  /** "filter forward -5 accept" for a base chain. */
  base?: string;
  /** The hash of each rule in order; "?" for a rule Fencer did not write. */
  hashes: readonly string[];
}

export interface LiveState {
  sets: Map<string, LiveSet>;
  /** Map name → its declaration and its entries, key → the chain it jumps to ("goto:x", "accept"… otherwise). */
  maps: Map<string, { decl: string; entries: Map<string, string> }>;
  chains: Map<string, LiveChain>;
  /** Objects and attributes Fencer never makes (a flowtable, a dormant table, a set timeout…). */
  foreign: string[];
}

/** A set Fencer just wrote; its Set of elements is built only if a later diff needs it. */
export function madeSet(decl: string, source: readonly string[]): LiveSet {
  let elements: Set<string> | undefined;
  return { decl, source, get elements() { return (elements ??= new Set(source)); } };
}

type Json = Record<string, unknown>;

export function parseNftJson(text: string): LiveState {
  const state: LiveState = { sets: new Map(), maps: new Map(), chains: new Map(), foreign: [] };
  const items = (JSON.parse(text) as { nftables?: Json[] }).nftables ?? [];
  const ours = (o: Json) => o.family === FAMILY && (o.table ?? o.name) === TABLE;
  for (const item of items) {
    const [kind, o] = Object.entries(item)[0] as [string, Json];
    if (kind === 'metainfo' || !ours(o)) continue;
    if (kind === 'table') {
      if (o.flags !== undefined) state.foreign.push(`table flags ${JSON.stringify(o.flags)}`);
    } else if (kind === 'set') {
      state.sets.set(o.name as string, { decl: declOf(o), elements: new Set(((o.elem ?? []) as unknown[]).map(element)) });
    } else if (kind === 'map') {
      const entries = new Map(((o.elem ?? []) as Array<[unknown, unknown]>).map(([k, v]) => [element(k), verdict(v)]));
      state.maps.set(o.name as string, { decl: `${declOf(o)} : ${String(o.map)}`, entries });
    } else if (kind === 'chain') {
      const base = o.hook === undefined ? undefined : `${String(o.type)} ${String(o.hook)} ${String(o.prio)} ${String(o.policy)}`;
      state.chains.set(o.name as string, { base, hashes: [] });
    } else if (kind === 'rule') {
      (state.chains.get(o.chain as string)?.hashes as string[] | undefined)?.push(commentHash(o.comment as string | undefined) ?? '?');
    } else {
      state.foreign.push(`${kind} ${String(o.name)}`);
    }
  }
  return state;
}

function declOf(o: Json): string {
  const type = Array.isArray(o.type) ? o.type.join(' . ') : String(o.type);
  const flags = Array.isArray(o.flags) ? [...o.flags].sort() : [];
  const extra = ['timeout', 'gc-interval', 'size'].filter((k) => o[k] !== undefined).map((k) => `${k} ${String(o[k])}`);
  return [type, ...flags, ...extra].join(' ');
}

/** An element in the text form nft accepts in `add element` and `delete element`. */
function element(e: unknown): string {
  if (typeof e === 'string' || typeof e === 'number') return String(e);
  const o = (e ?? {}) as Json;
  if (o.prefix) {
    const p = o.prefix as { addr: string; len: number };
    return `${p.addr}/${p.len}`;
  }
  if (o.range) return (o.range as unknown[]).map(element).join('-');
  if (o.concat) return (o.concat as unknown[]).map(element).join(' . ');
  if (o.elem) return element((o.elem as Json).val);
  return JSON.stringify(e);
}

function verdict(v: unknown): string {
  if (typeof v === 'string') return v;
  const [kind, arg] = Object.entries((v ?? {}) as Json)[0] ?? [];
  const target = (arg as { target?: string } | undefined)?.target;
  // Fencer's maps only jump; any other verdict is kept in a form no chain name can equal.
  if (kind === 'jump' && target) return target;
  return target ? `${kind}:${target}` : String(kind);
}
