// A node moving from one Linux dataplane to the other (iptables ↔ nftables): the other's rules
// keep dropping what the new ones allow (a drop in any table is final), so they go — but only
// once the new dataplane enforces, so the node is never left without rules in between.
import type { CompiledPolicySetSpec } from '../../crds/types.ts';
import type { Logger } from '../../runtime/log.ts';
import type { Dataplane, DataplaneOutcome } from './dataplane.ts';

export interface PreviousDataplane {
  name: string;
  dataplane: Dataplane;
  /** Whether it holds anything on this node; only then is it cleaned up (a no-op restart writes nothing). */
  holdsState(): Promise<boolean>;
}

export class HandoverDataplane implements Dataplane {
  private readonly current: Dataplane;
  private readonly previous: PreviousDataplane;
  private readonly log?: Logger;
  private handedOver = false;
  private applied = false;

  constructor(current: Dataplane, previous: PreviousDataplane, log?: Logger) {
    this.current = current;
    this.previous = previous;
    this.log = log;
  }

  async apply(spec: CompiledPolicySetSpec): Promise<DataplaneOutcome> {
    const outcome = await this.current.apply(spec);
    this.applied = true;
    if (!this.handedOver) await this.handOver();
    return outcome;
  }

  private async handOver(): Promise<void> {
    try {
      if (await this.previous.holdsState()) {
        await this.previous.dataplane.cleanup();
        this.log?.info({ removed: this.previous.name }, 'removed what the other dataplane enforced on this node before');
      }
      this.handedOver = true;
    } catch (e) {
      // Tried again after the next apply; meanwhile both dataplanes' drops hold (stricter, never wider).
      this.log?.warn({ err: (e as Error).message, other: this.previous.name }, 'could not remove the other dataplane\'s rules');
    }
  }

  /** A removal that failed is tried again here too: a node with no change coming still gets there. */
  async drift(spec: CompiledPolicySetSpec): Promise<string[]> {
    if (this.applied && !this.handedOver) await this.handOver();
    return this.current.drift(spec);
  }

  async cleanup(): Promise<void> {
    await this.current.cleanup();
    if (await this.previous.holdsState()) await this.previous.dataplane.cleanup();
  }

  prepare(): Promise<void> {
    return this.current.prepare?.() ?? Promise.resolve();
  }

  async close(): Promise<void> {
    await this.current.close?.();
    await this.previous.dataplane.close?.();
  }
}
