// The one label-selector matcher of the compiler, per the Kubernetes LabelSelector semantics.
import type { V1LabelSelector } from '@kubernetes/client-node';

export type Labels = Record<string, string> | undefined;
const OPERATORS = new Set(['In', 'NotIn', 'Exists', 'DoesNotExist']);

/** Why a selector cannot be evaluated, or undefined when it is well formed. */
export function selectorProblem(selector: V1LabelSelector): string | undefined {
  for (const e of selector.matchExpressions ?? []) {
    if (!OPERATORS.has(e.operator)) return `unknown selector operator "${e.operator}" for key "${e.key}"`;
    const needsValues = e.operator === 'In' || e.operator === 'NotIn';
    if (needsValues && !(e.values?.length)) return `operator ${e.operator} on key "${e.key}" needs values`;
  }
  return undefined;
}

export function matchesSelector(selector: V1LabelSelector, labels: Labels): boolean {
  const l = labels ?? {};
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) {
    if (l[k] !== v) return false;
  }
  for (const e of selector.matchExpressions ?? []) {
    const has = Object.hasOwn(l, e.key);
    switch (e.operator) {
      case 'In': if (!has || !e.values?.includes(l[e.key])) return false; break;
      case 'NotIn': if (has && e.values?.includes(l[e.key])) return false; break;
      case 'Exists': if (!has) return false; break;
      case 'DoesNotExist': if (has) return false; break;
      default: return false;
    }
  }
  return true;
}

/** Canonical form: equal selectors give equal strings, whatever the order of their terms. */
export function canonicalSelector(selector: V1LabelSelector | undefined): string {
  if (!selector) return '';
  const labels = Object.entries(selector.matchLabels ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([k, v]) => `${k}=${v}`);
  const exprs = (selector.matchExpressions ?? [])
    .map((e) => `${e.key} ${e.operator}${e.values?.length ? ` (${[...e.values].sort().join(',')})` : ''}`)
    .sort();
  return [...labels, ...exprs].join(', ');
}

export function describeSelector(selector: V1LabelSelector | undefined): string {
  const c = canonicalSelector(selector);
  return c === '' ? 'any labels' : c;
}
