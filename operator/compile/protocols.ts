// The one place that knows the NetworkPolicy port defaults.
import type { Protocol } from '../../model/cluster.ts';

export const DEFAULT_PROTOCOL: Protocol = 'TCP';

export function normalizeProtocol(p: string | undefined): Protocol | undefined {
  const v = p ?? DEFAULT_PROTOCOL;
  return v === 'TCP' || v === 'UDP' || v === 'SCTP' ? v : undefined;
}
