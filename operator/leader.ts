// Leader election on a coordination.k8s.io/v1 Lease: the leader renews every renewMs and steps down
// when it could not renew for renewDeadlineMs (shorter than the lease, so it stops writing before
// anyone may take over); a standby tries every retryMs and takes over once the lease has not changed
// for its duration (lease-step.ts), or at once when it was released. Every write carries the
// resourceVersion just read, so two candidates never both win. stop() releases the lease.
import { ApiException, V1MicroTime, type CoordinationV1Api, type V1Lease } from '@kubernetes/client-node';
import type { Logger } from '../runtime/log.ts';
import { leaseStep, sight, type LeaseSnapshot, type Sighting } from './lease-step.ts';
import type { LeaseTimings } from './options.ts';
import { errorText } from './write-errors.ts';

export interface ElectorDeps {
  coordination: CoordinationV1Api;
  namespace: string;
  name: string;
  identity: string;
  timings: LeaseTimings;
  log: Logger;
  onChange: (leading: boolean) => void;
  now?: () => number;
}

export class LeaderElector {
  private readonly deps: ElectorDeps;
  private readonly now: () => number;
  private leading = false;
  private stopped = true;
  private lastRenew = -Infinity;
  private sighting?: Sighting;
  private timer?: NodeJS.Timeout;
  private ticking?: Promise<void>;

  constructor(deps: ElectorDeps) {
    this.deps = deps;
    this.now = deps.now ?? (() => performance.now());
  }

  isLeader(): boolean {
    return this.leading;
  }

  start(): void {
    this.stopped = false;
    this.schedule(0);
  }

  /** Stops campaigning; with release, a held lease is handed back so a standby takes over at once. */
  async stop(release = true): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.ticking;
    const wasLeading = this.leading;
    this.setLeading(false);
    if (wasLeading && release) await this.release();
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.ticking = this.tick().finally(() => {
        this.ticking = undefined;
        this.schedule(this.leading ? this.deps.timings.renewMs : this.deps.timings.retryMs);
      });
    }, delayMs);
  }

  private async tick(): Promise<void> {
    try {
      const lease = await this.read();
      if (this.stopped) return;
      const now = this.now();
      this.sighting = sight(snapshot(lease), this.sighting, now);
      const step = leaseStep(snapshot(lease), this.deps.identity, this.sighting, now, this.deps.timings.durationMs);
      if (step === 'wait') return this.setLeading(false);
      await this.write(step, lease);
      this.lastRenew = this.now();
      this.setLeading(true);
    } catch (e) {
      this.renewFailed(e);
    }
  }

  private renewFailed(e: unknown): void {
    const conflict = e instanceof ApiException && e.code === 409;
    if (!conflict) this.deps.log.warn({ lease: this.deps.name, err: errorText(e) }, 'lease request failed');
    if (this.leading && this.now() - this.lastRenew > this.deps.timings.renewDeadlineMs) {
      this.deps.log.error({ lease: this.deps.name }, 'could not renew the lease in time; stepping down');
      this.setLeading(false);
    }
  }

  private async read(): Promise<V1Lease | undefined> {
    try {
      return await this.deps.coordination.readNamespacedLease({ name: this.deps.name, namespace: this.deps.namespace });
    } catch (e) {
      if (e instanceof ApiException && e.code === 404) return undefined;
      throw e;
    }
  }

  private async write(step: 'create' | 'renew' | 'acquire', lease: V1Lease | undefined): Promise<void> {
    const { coordination, namespace, name, identity, timings } = this.deps;
    const now = new V1MicroTime();
    const durationSeconds = timings.durationMs / 1000;
    if (step === 'create' || !lease) {
      const body: V1Lease = { metadata: { name, namespace }, spec: { holderIdentity: identity, leaseDurationSeconds: durationSeconds, acquireTime: now, renewTime: now, leaseTransitions: 0 } };
      await coordination.createNamespacedLease({ namespace, body });
      return;
    }
    const spec = { ...lease.spec, holderIdentity: identity, leaseDurationSeconds: durationSeconds, renewTime: now };
    if (step === 'acquire') Object.assign(spec, { acquireTime: now, leaseTransitions: (lease.spec?.leaseTransitions ?? 0) + 1 });
    await coordination.replaceNamespacedLease({ name, namespace, body: { ...lease, spec } });
  }

  private async release(): Promise<void> {
    try {
      const lease = await this.read();
      if (lease?.spec?.holderIdentity !== this.deps.identity) return;
      const spec = { ...lease.spec, holderIdentity: undefined, leaseDurationSeconds: 1, renewTime: new V1MicroTime() };
      await this.deps.coordination.replaceNamespacedLease({ name: this.deps.name, namespace: this.deps.namespace, body: { ...lease, spec } });
      this.deps.log.info({ lease: this.deps.name }, 'lease released');
    } catch (e) {
      this.deps.log.warn({ lease: this.deps.name, err: errorText(e) }, 'could not release the lease');
    }
  }

  private setLeading(leading: boolean): void {
    if (leading === this.leading) return;
    this.leading = leading;
    this.deps.log.info({ lease: this.deps.name, identity: this.deps.identity }, leading ? 'became leader' : 'no longer leader');
    this.deps.onChange(leading);
  }
}

function snapshot(lease: V1Lease | undefined): LeaseSnapshot | undefined {
  if (!lease) return undefined;
  return { holder: lease.spec?.holderIdentity || undefined, durationSeconds: lease.spec?.leaseDurationSeconds, resourceVersion: lease.metadata?.resourceVersion };
}
