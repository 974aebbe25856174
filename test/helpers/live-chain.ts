// Fencer's chains exist in two generations (FENCER-X and FENCER-X-1); tests that edit a chain by
// hand must pick the one FENCER-FORWARD leads to.
import assert from 'node:assert/strict';

/** The name under which `base` is live, read from iptables-save output of the filter table. */
export function liveChain(save: string, base: string): string {
  const live = /^-A FENCER-FORWARD .* -g FENCER-TOP(-1)?$/m.exec(save);
  assert.ok(live, 'FENCER-FORWARD leads to no generation');
  return live[1] ? `${base}-1` : base;
}
