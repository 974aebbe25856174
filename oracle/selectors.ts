// Kubernetes label selector semantics (metav1.LabelSelector), written from the API reference.
import type { V1LabelSelector, V1LabelSelectorRequirement } from '@kubernetes/client-node';

export type Labels = Readonly<Record<string, string>>;

/** matchLabels AND matchExpressions; an empty selector therefore matches everything. */
export function selectorMatches(selector: V1LabelSelector, labels: Labels): boolean {
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) {
    if (!hasKey(labels, key) || labels[key] !== value) return false;
  }
  return (selector.matchExpressions ?? []).every((req) => requirementMatches(req, labels));
}

function requirementMatches(req: V1LabelSelectorRequirement, labels: Labels): boolean {
  const present = hasKey(labels, req.key);
  const values = req.values ?? [];
  switch (req.operator) {
    case 'In':
      return present && values.includes(labels[req.key]);
    case 'NotIn':
      // A pod without the key is "not in" any set: Kubernetes selects it.
      return !present || !values.includes(labels[req.key]);
    case 'Exists':
      return present;
    case 'DoesNotExist':
      return !present;
    default:
      // The API server rejects other operators; failing closed keeps a malformed policy from granting access.
      return false;
  }
}

// Own-property check so that keys like "constructor" or "__proto__" are not inherited from Object.prototype.
function hasKey(labels: Labels, key: string): boolean {
  return Object.prototype.hasOwnProperty.call(labels, key);
}
