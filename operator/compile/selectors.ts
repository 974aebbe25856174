// The one label-selector matcher of the compiler, per the Kubernetes LabelSelector semantics.
import type { V1LabelSelector } from '@kubernetes/client-node';

export type Labels = Record<string, string> | undefined;
const OPERATORS = new Set(['In', 'NotIn', 'Exists', 'DoesNotExist']);

// Label syntax as the apiserver enforces it: [prefix/]name, prefix a DNS subdomain of up to 253
// characters, name and value up to 63 of [A-Za-z0-9-_.] starting and ending alphanumeric (values may be
// empty). Selectors from offline manifests may break it; they must not be half-understood, since the
// canonical form (and so a set's name) assumes no ", " or "=" inside keys and values.
const LABEL_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

function labelKeyProblem(key: string): string | undefined {
  const slash = key.lastIndexOf('/');
  const prefix = slash < 0 ? undefined : key.slice(0, slash);
  const name = slash < 0 ? key : key.slice(slash + 1);
  if (prefix !== undefined && (prefix.length > 253 || !DNS_SUBDOMAIN.test(prefix))) return `label key ${JSON.stringify(key)} has an invalid prefix`;
  if (!LABEL_NAME.test(name)) return `label key ${JSON.stringify(key)} is not a valid label name`;
  return undefined;
}

function labelValueProblem(key: string, value: unknown): string | undefined {
  if (typeof value !== 'string' || (value !== '' && !LABEL_NAME.test(value))) return `label value ${JSON.stringify(value)} for key ${JSON.stringify(key)} is not a valid label value`;
  return undefined;
}

/** Why a selector cannot be evaluated, or undefined when it is well formed. */
export function selectorProblem(selector: V1LabelSelector): string | undefined {
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) {
    const problem = labelKeyProblem(key) ?? labelValueProblem(key, value);
    if (problem) return problem;
  }
  for (const e of selector.matchExpressions ?? []) {
    if (!OPERATORS.has(e.operator)) return `unknown selector operator "${e.operator}" for key "${e.key}"`;
    const needsValues = e.operator === 'In' || e.operator === 'NotIn';
    if (needsValues && !(e.values?.length)) return `operator ${e.operator} on key "${e.key}" needs values`;
    const problem = labelKeyProblem(String(e.key)) ?? (e.values ?? []).map((v) => labelValueProblem(e.key, v)).find(Boolean);
    if (problem) return problem;
  }
  return undefined;
}

type Matcher = (labels: Record<string, string>) => boolean;
const compiled = new WeakMap<V1LabelSelector, Matcher>();

export function matchesSelector(selector: V1LabelSelector, labels: Labels): boolean {
  let m = compiled.get(selector);
  if (!m) compiled.set(selector, (m = compileSelector(selector)));
  return m(labels ?? {});
}

// Selectors are matched millions of times in a full compile: turn each into plain arrays once.
function compileSelector(selector: V1LabelSelector): Matcher {
  const equal = Object.entries(selector.matchLabels ?? {});
  const exprs = (selector.matchExpressions ?? []).map((e) => ({ key: e.key, op: e.operator, values: new Set(e.values ?? []) }));
  return (l) => {
    for (const [k, v] of equal) if (l[k] !== v) return false;
    for (const e of exprs) {
      const has = Object.hasOwn(l, e.key);
      switch (e.op) {
        case 'In': if (!has || !e.values.has(l[e.key])) return false; break;
        case 'NotIn': if (has && e.values.has(l[e.key])) return false; break;
        case 'Exists': if (!has) return false; break;
        case 'DoesNotExist': if (has) return false; break;
        default: return false;
      }
    }
    return true;
  };
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
