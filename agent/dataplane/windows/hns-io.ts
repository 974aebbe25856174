// HNS reads and writes as the dataplane needs them: batched to the configured request sizes, timed into
// Azure NPM's npm_windows_* histograms and counted into its failure counters.
import type { Counter, Histogram } from 'prom-client';
import type { NpmWindowsMetrics } from '../../../runtime/npm-metrics.ts';
import type { HnsClient } from './hns-client.ts';
import { isFencerAcl, PREFIX, type AclPolicy, type SetPolicy } from './hns-types.ts';
import type { HnsState } from './plan.ts';

export interface HnsIoOptions {
  /** ACLs sent in one request for one endpoint: a longer list goes as one Update and then Adds. */
  maxAclsPerCall: number;
  /** Set policies sent in one network request. */
  maxSetsPerCall: number;
  metrics?: NpmWindowsMetrics;
}

type Op = 'create' | 'update' | 'delete';

export class HnsIo {
  private readonly client: HnsClient;
  private readonly opts: HnsIoOptions;

  constructor(client: HnsClient, opts: HnsIoOptions) {
    this.client = client;
    this.opts = opts;
  }

  /** Every local endpoint with all its ACLs, and Fencer's set policies. */
  async readState(): Promise<HnsState> {
    const m = this.opts.metrics;
    const list = await this.timed(m?.listEndpointsLatency, m?.listEndpointsFailures, {}, () => this.client.listEndpoints());
    const sets = await this.timed(m?.getNetworkLatency, m?.getNetworkFailures, {}, () => this.client.listSetPolicies());
    const endpoints: HnsState['endpoints'] = new Map();
    for (const ep of [...list].sort((a, b) => (a.id < b.id ? -1 : 1))) {
      if (endpoints.has(ep.ip)) continue; // a stale endpoint sharing a live pod's IP: the first id wins
      const acls = await this.timed(m?.getEndpointLatency, m?.getEndpointFailures, {}, () => this.client.getEndpointAcls(ep.id));
      endpoints.set(ep.ip, { id: ep.id, acls });
    }
    return { endpoints, sets: new Map(sets.filter((s) => s.Id.startsWith(PREFIX)).map((s) => [s.Id, s])) };
  }

  /** Replaces an endpoint's ACL list; a list longer than one request starts with its Blocks (fail closed). */
  async writeAcls(id: string, acls: AclPolicy[]): Promise<void> {
    const ordered = [...acls.filter((a) => !isFencerAcl(a)), ...acls.filter((a) => isFencerAcl(a) && a.Action === 'Block'), ...acls.filter((a) => isFencerAcl(a) && a.Action !== 'Block')];
    const chunks = chunk(ordered, this.opts.maxAclsPerCall);
    await this.acl('update', () => this.client.setEndpointAcls(id, chunks[0] ?? []));
    for (const more of chunks.slice(1)) await this.acl('create', () => this.client.addEndpointAcls(id, more));
  }

  async writeSets(op: 'create' | 'update', sets: SetPolicy[], done: (batch: SetPolicy[]) => void): Promise<void> {
    for (const batch of chunk(sets, this.opts.maxSetsPerCall)) {
      await this.set(op, () => this.client.addOrUpdateSetPolicies(batch));
      done(batch);
    }
  }

  async removeSets(sets: SetPolicy[], done: (batch: SetPolicy[]) => void): Promise<void> {
    for (const batch of chunk(sets, this.opts.maxSetsPerCall)) {
      await this.set('delete', () => this.client.removeSetPolicies(batch.map((s) => s.Id)));
      done(batch);
    }
  }

  private acl(op: Op, fn: () => Promise<void>): Promise<void> {
    return this.timed(this.opts.metrics?.aclLatency, this.opts.metrics?.aclFailures, { operation: op }, fn);
  }

  private set(op: Op, fn: () => Promise<void>): Promise<void> {
    return this.timed(this.opts.metrics?.setPolicyLatency, this.opts.metrics?.setPolicyFailures, { operation: op, is_nested: 'false' }, fn);
  }

  private async timed<T>(histogram: Histogram | undefined, failures: Counter | undefined, labels: Record<string, string>, fn: () => Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      return await fn();
    } catch (e) {
      failures?.inc(labels);
      throw e;
    } finally {
      histogram?.observe(labels, (performance.now() - started) / 1000);
    }
  }
}

function chunk<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += Math.max(1, size)) out.push(items.slice(i, i + Math.max(1, size)));
  return out;
}
