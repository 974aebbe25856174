// Fencer's chains exist in two generations (FENCER-X and FENCER-X-1); tests that edit a chain by
// hand must pick the one FENCER-FORWARD leads to.
import assert from 'node:assert/strict';
import { parseIptablesSave } from '../../agent/dataplane/linux/kernel-state.ts';
import { chainName } from '../../agent/dataplane/linux/names.ts';
import { liveGeneration } from '../../agent/dataplane/linux/plan.ts';

/** The name under which `base` is live, read from iptables-save output of the filter table. */
export function liveChain(save: string, base: string): string {
  const generation = liveGeneration(parseIptablesSave(save).chains);
  assert.ok(generation !== undefined, 'FENCER-FORWARD leads to no generation');
  return chainName(base, generation);
}
