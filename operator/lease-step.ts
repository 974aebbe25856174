// The leader-election decision, pure. Expiry is judged by the local clock only: a lease counts as
// expired when its record (resourceVersion) has not changed for its duration as seen from here,
// so clock skew between replicas does not matter (client-go's rule).

export interface LeaseSnapshot {
  holder?: string;
  durationSeconds?: number;
  resourceVersion?: string;
}

/** When this replica last saw the lease record change. */
export interface Sighting {
  resourceVersion?: string;
  at: number;
}

export type LeaseStep = 'create' | 'renew' | 'acquire' | 'wait';

export function sight(lease: LeaseSnapshot | undefined, previous: Sighting | undefined, now: number): Sighting {
  if (previous && previous.resourceVersion === lease?.resourceVersion) return previous;
  return { resourceVersion: lease?.resourceVersion, at: now };
}

export function leaseStep(lease: LeaseSnapshot | undefined, identity: string, sighting: Sighting, now: number, defaultDurationMs: number): LeaseStep {
  if (!lease) return 'create';
  if (lease.holder === identity) return 'renew';
  if (!lease.holder) return 'acquire';
  const durationMs = lease.durationSeconds ? lease.durationSeconds * 1000 : defaultDurationMs;
  return now - sighting.at >= durationMs ? 'acquire' : 'wait';
}
