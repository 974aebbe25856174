// What an agent needs from a dataplane (Linux ipset/iptables, Windows HNS): apply a spec atomically,
// say how the live state differs from a spec, and remove everything it owns.
import type { CompiledPolicySetSpec } from '../../crds/types.ts';

export interface DataplaneOutcome {
  kind: 'noop' | 'members' | 'rules';
  counts: { rules: number; sets: number; entries: number };
  ipsetMs: number;
  iptablesMs: number;
}

export interface Dataplane {
  apply(spec: CompiledPolicySetSpec): Promise<DataplaneOutcome>;
  drift(spec: CompiledPolicySetSpec): Promise<string[]>;
  cleanup(): Promise<void>;
  /** Optional warm-up before the first apply (e.g. reading the live state while the watch starts). */
  prepare?(): Promise<void>;
  /** Finishes cleanup in flight and releases helper processes; called when the agent stops. */
  close?(): Promise<void>;
}
