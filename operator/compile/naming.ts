// The one naming function for sets and rules: a kind letter and 16 hex digits of a hash of what the
// object stands for, so names are stable across restarts and fit ipset's 31-character limit.
import { createHash } from 'node:crypto';

export type IdKind = 't' | 'p' | 'n' | 'r';

export function stableId(kind: IdKind, ...parts: string[]): string {
  return `${kind}-${createHash('sha256').update(parts.join('\u0000')).digest('hex').slice(0, 16)}`;
}

export function contentHash(text: string): string {
  return `sha256:${createHash('sha256').update(text).digest('hex')}`;
}
