// Whether two specs' targets would enforce the same thing: compared field by field, which is
// cheaper than serialising 10k rules to compare or hash them.
import { sameList } from '../runtime/same-list.ts';
import type { DirectionRules, Rule, Target } from './types.ts';

/** Equal in every field the chains are rendered from (pod and policy names are only readable labels). */
export function sameTargets(a: Target[], b: Target[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  return a.every((t, i) => t.podSet === b[i].podSet && sameDirection(t.ingress, b[i].ingress) && sameDirection(t.egress, b[i].egress));
}

function sameDirection(a: DirectionRules | undefined, b: DirectionRules | undefined): boolean {
  if (!a || !b) return a === b;
  return a.rules.length === b.rules.length && a.rules.every((r, i) => sameRule(r, b.rules[i]));
}

function sameRule(a: Rule, b: Rule): boolean {
  return a.id === b.id && a.anyPeer === b.anyPeer && a.anyPort === b.anyPort && sameList(a.peers, b.peers)
    && a.ports.length === b.ports.length
    && a.ports.every((p, i) => p.protocol === b.ports[i].protocol && p.port === b.ports[i].port && p.endPort === b.ports[i].endPort && p.namedPortSet === b.ports[i].namedPortSet);
}
