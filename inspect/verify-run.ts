// `fencer verify`, the I/O part: reads the kernel (directly, or inside a network namespace) and
// compares it with a CompiledPolicySet spec, both in detail and with the agent's own drift check.
import { existsSync } from 'node:fs';
import { toolsFor, type IptablesMode } from '../agent/dataplane/linux/backend.ts';
import { LinuxDataplane } from '../agent/dataplane/linux/dataplane.ts';
import { ExecRunner, KernelToolError } from '../agent/dataplane/linux/runner.ts';
import type { CompiledPolicySetSpec } from '../crds/types.ts';
import { InspectError } from './errors.ts';
import { compareKernel, type HookPosition, type KernelComparison } from './verify.ts';

export interface VerifyOptions {
  spec: CompiledPolicySetSpec;
  netns?: string;
  hookPosition: HookPosition;
  iptablesMode: 'auto' | IptablesMode;
}

export interface VerifyOutcome extends KernelComparison {
  /** What the agent's drift check (LinuxDataplane.drift) reports; empty when it sees no drift. */
  drift: string[];
  matches: boolean;
}

export async function verifyKernel(opts: VerifyOptions): Promise<VerifyOutcome> {
  if (opts.netns && !existsSync(`/run/netns/${opts.netns}`)) {
    throw new InspectError(`no network namespace ${opts.netns} (\`ip netns list\` shows those there are)`);
  }
  const dp = new LinuxDataplane({
    runner: new ExecRunner(opts.netns ? ['ip', 'netns', 'exec', opts.netns] : []),
    hookPosition: opts.hookPosition,
    tools: opts.iptablesMode === 'auto' ? undefined : toolsFor(opts.iptablesMode),
  });
  try {
    const kernel = await dp.readKernel();
    const comparison = compareKernel(opts.spec, kernel, opts.hookPosition);
    const drift = await dp.drift(opts.spec);
    return { ...comparison, drift, matches: comparison.differences.length === 0 && drift.length === 0 };
  } catch (e) {
    if (e instanceof KernelToolError || (e as { code?: string }).code === 'ENOENT') {
      const root = process.getuid?.() === 0 ? '' : ' (verify reads iptables and ipset: run it as root on the node)';
      throw new InspectError(`reading the kernel state${opts.netns ? ` of network namespace ${opts.netns}` : ''} failed: ${(e as Error).message}${root}`);
    }
    throw e;
  }
}
