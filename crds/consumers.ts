// Which agents receive an AddressSet shard: labels on the shard that the apiserver selects on, so an
// agent downloads the sets its node uses and not every set in the cluster.
// A set used by few nodes names each of them (one label per node: exact delivery). A set used by
// more names node buckets instead (at most BUCKETS labels, however many nodes use it): a shard of a
// set every node uses carries 32 labels, not 1000, and an agent may receive a few sets of its
// bucket that it ignores. Measured alternatives: docs/decisions.md (shared address sets).
import { createHash } from 'node:crypto';

export const LABEL_PREFIX = 'fencer.dev';
/** Up to this many consumers, a shard names each node; above it, their buckets. */
export const EXACT_CONSUMERS = 16;
export const BUCKETS = 32;

const digest = (text: string) => createHash('sha256').update(text).digest('hex');

/** The label naming one node (a hash: node names may be longer than a label name allows). */
export function nodeLabel(node: string): string {
  return `${LABEL_PREFIX}/n-${digest(node).slice(0, 12)}`;
}

export function bucketOf(node: string): number {
  return parseInt(digest(`bucket/${node}`).slice(0, 8), 16) % BUCKETS;
}

export function bucketLabel(bucket: number): string {
  return `${LABEL_PREFIX}/b-${bucket}`;
}

/** The consumer labels of a set used by these nodes (values are empty: agents select on the key). */
export function consumerLabels(nodes: Iterable<string>): Record<string, string> {
  const list = [...new Set(nodes)];
  const keys = list.length <= EXACT_CONSUMERS ? list.map(nodeLabel) : [...new Set(list.map(bucketOf))].map(bucketLabel);
  return Object.fromEntries(keys.sort().map((k) => [k, '']));
}

export function isConsumerLabel(key: string): boolean {
  return /^fencer\.dev\/(n-[0-9a-f]{12}|b-\d+)$/.test(key);
}

/** The label selectors of one agent's AddressSet watches: shards naming its node, and shards naming its bucket. */
export function agentSetSelectors(node: string): string[] {
  return [nodeLabel(node), bucketLabel(bucketOf(node))];
}

/** Whether an agent on `node` receives an object with these labels. */
export function deliveredTo(labels: Record<string, string> | undefined, node: string): boolean {
  return !!labels && agentSetSelectors(node).some((key) => key in labels);
}
