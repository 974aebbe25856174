// Pure planning: from what the table should hold and what it holds to one `nft -f` script, which
// the kernel commits as one transaction (all of it or nothing, never a state in between).
// - noop: nothing differs.
// - members: sets, maps and chains are the same, only elements differ → `delete element` /
//   `add element` statements alone; no rule is touched (their handles stay). A local pod joining
//   or leaving a target, or moving to another, is a map entry: a member change too.
// - rules: sets or chains differ → new sets and chains added, changed chains flushed and refilled,
//   left-over chains and sets deleted, elements brought up to date, all in the same transaction.
//   A table that is missing, or holds what Fencer never makes, is replaced whole (render.ts).
import { sameList } from '../../../runtime/same-list.ts';
import { madeSet, type LiveState } from './live-state.ts';
import { DISPATCH_MAPS, FORWARD_CHAIN, FORWARD_PRIORITY, TABLE_REF } from './names.ts';
import { elementStatement, mapElement, MAP_TYPE, renderTable, SET_TYPES } from './render.ts';
import type { Desired, DesiredRule } from './translate.ts';
import type { ElementChange } from './session.ts';

export interface Plan {
  kind: 'noop' | 'members' | 'rules';
  /** The `nft -f` script; empty for a noop. */
  script: string;
  /** The script replaces the table whole (it was missing, or holds what Fencer never makes). */
  whole: boolean;
  /** What differs, readable (the drift check's answer). */
  differences: string[];
  counts: Desired['counts'];
  /** The table once the script is committed. */
  after: LiveState;
  /** A members plan's element changes, deletes first (the script holds the same). */
  changes: ElementChange[];
}

const FORWARD_BASE = `filter forward ${FORWARD_PRIORITY} accept`;
const MAP_DECL = MAP_TYPE.replace(/^type /, '');
const liveDecl = (statements: string[]) => statements.map((s) => s.replace(/^(type|flags) /, '')).join(' ');

export function planNft(d: Desired, live: LiveState | undefined): Plan {
  const after = afterState(d);
  const whole = live ? wholeReasons(d, live) : ['the table inet fencer is missing'];
  if (whole.length) return { kind: 'rules', whole: true, script: renderTable(d), differences: whole, counts: d.counts, after, changes: [] };
  const t = live!;
  const diff: string[] = [];
  const head: string[] = [];
  const elements: string[] = [];
  const changes: ElementChange[] = [];
  const change = (verb: ElementChange['verb'], set: string, list: readonly string[]) => {
    if (list.length) changes.push({ verb, set, elements: list });
    return elementStatement(verb, set, list);
  };
  const body: string[] = [];
  const tail: string[] = [];
  for (const s of d.sets) {
    const have = t.sets.get(s.name);
    if (!have) {
      diff.push(`set ${s.name} is missing`);
      head.push(`add set ${TABLE_REF} ${s.name} { ${SET_TYPES[s.kind].join('; ')}; }`, ...elementStatement('add', s.name, s.elements));
      continue;
    }
    if (have.source && sameList(have.source, s.elements)) continue;
    const { missing, extra } = elementDiff(have.elements, s.elements);
    if (missing.length + extra.length) diff.push(described(`set ${s.name}`, missing, extra));
    // Deletes first: an interval set refuses a block that overlaps one still in it.
    elements.push(...change('delete', s.name, extra), ...change('add', s.name, missing));
  }
  for (const direction of ['egress', 'ingress'] as const) {
    const name = DISPATCH_MAPS[direction];
    const have = t.maps.get(name)!.entries;
    const want = new Map(d.maps[direction]);
    const extra = [...have.keys()].filter((ip) => want.get(ip) !== have.get(ip));
    const missing = [...want].filter(([ip, to]) => have.get(ip) !== to);
    if (missing.length + extra.length) diff.push(described(`map ${name}`, missing.map(mapElement), extra));
    // Entries pointing to chains about to be deleted go before the chains do.
    elements.push(...change('delete', name, extra), ...change('add', name, missing.map(mapElement)));
  }
  for (const [chain, rules] of d.chains) {
    const have = t.chains.get(chain);
    if (have && sameList(have.hashes, hashesOf(rules))) continue;
    diff.push(have ? `chain ${chain} differs` : `chain ${chain} is missing`);
    if (!have) head.push(`add chain ${TABLE_REF} ${chain}`);
    else body.push(`flush chain ${TABLE_REF} ${chain}`);
    body.push(...rules.map((r) => `add rule ${TABLE_REF} ${chain} ${r.text}`));
  }
  for (const chain of [...t.chains.keys()].filter((c) => !d.chains.has(c)).sort()) {
    diff.push(`chain ${chain} is left over`);
    tail.push(`flush chain ${TABLE_REF} ${chain}`, `delete chain ${TABLE_REF} ${chain}`);
  }
  const wanted = new Set(d.sets.map((s) => s.name));
  for (const set of [...t.sets.keys()].filter((s) => !wanted.has(s)).sort()) {
    diff.push(`set ${set} is left over`);
    tail.push(`delete set ${TABLE_REF} ${set}`);
  }
  const ruleChange = head.length + body.length + tail.length > 0;
  const script = [...head, ...elements, ...body, ...tail];
  return { kind: ruleChange ? 'rules' : script.length ? 'members' : 'noop', whole: false, script: script.length ? `${script.join('\n')}\n` : '', differences: diff, counts: d.counts, after, changes };
}

/** Why the table cannot be brought up to date piece by piece. */
function wholeReasons(d: Desired, t: LiveState): string[] {
  const out = t.foreign.map((f) => `the table holds ${f}, which Fencer never makes`);
  const forward = t.chains.get(FORWARD_CHAIN);
  if (forward?.base !== FORWARD_BASE) out.push(`chain ${FORWARD_CHAIN} is ${forward?.base ? `hooked as "${forward.base}"` : 'not the hooked chain'} (wants "${FORWARD_BASE}")`);
  for (const [name, c] of t.chains) if (c.base && name !== FORWARD_CHAIN) out.push(`chain ${name} is hooked as "${c.base}"`);
  for (const [name, c] of t.chains) if (!c.base && name === FORWARD_CHAIN) out.push(`chain ${name} is not hooked`);
  for (const name of Object.values(DISPATCH_MAPS)) {
    const m = t.maps.get(name);
    if (m?.decl !== MAP_DECL) out.push(m ? `map ${name} is declared as "${m.decl}"` : `map ${name} is missing`);
  }
  for (const name of t.maps.keys()) if (!Object.values(DISPATCH_MAPS).includes(name as never)) out.push(`map ${name} is left over`);
  for (const s of d.sets) {
    const have = t.sets.get(s.name);
    if (have && have.decl !== liveDecl(SET_TYPES[s.kind])) out.push(`set ${s.name} is declared as "${have.decl}"`);
  }
  return [...new Set(out)];
}

// One array per rendered chain: after our own apply the live hashes are the very same array.
const hashMemo = new WeakMap<DesiredRule[], string[]>();

function hashesOf(rules: DesiredRule[]): string[] {
  let h = hashMemo.get(rules);
  if (!h) hashMemo.set(rules, (h = rules.map((r) => r.hash)));
  return h;
}

function elementDiff(have: Set<string>, want: readonly string[]): { missing: string[]; extra: string[] } {
  const missing = want.filter((e) => !have.has(e));
  // Equal sizes and nothing missing: equal sets, no need to look for extra elements.
  if (missing.length === 0 && have.size === want.length) return { missing, extra: [] };
  const w = new Set(want);
  return { missing, extra: [...have].filter((e) => !w.has(e)) };
}

function described(what: string, missing: string[], extra: string[]): string {
  const sample = (l: string[]) => l.slice(0, 3).join(', ') + (l.length > 3 ? ', …' : '');
  return [missing.length ? `${what}: ${missing.length} missing (${sample(missing)})` : '', extra.length ? `${what}: ${extra.length} extra (${sample(extra)})` : ''].filter(Boolean).join('; ');
}

/** The table as the plan leaves it, so the next apply can plan against it without reading. */
function afterState(d: Desired): LiveState {
  const chains = new Map([...d.chains].map(([name, rules]) => [name, { base: name === FORWARD_CHAIN ? FORWARD_BASE : undefined, hashes: hashesOf(rules) }]));
  const maps = new Map((['egress', 'ingress'] as const).map((dir) => [DISPATCH_MAPS[dir], { decl: MAP_DECL, entries: new Map(d.maps[dir]) }]));
  return { sets: new Map(d.sets.map((s) => [s.name, madeSet(liveDecl(SET_TYPES[s.kind]), s.elements)])), maps, chains, foreign: [] };
}

