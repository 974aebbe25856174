// Kernel tools aimed at a named network namespace (the sandbox's simulated nodes): the prefix that
// enters it, and whether a long-lived helper still runs in the namespace that has the name now — one
// deleted and made again under the same name is a new namespace, and a helper inside the old one
// would change a kernel nobody reads.
import { statSync } from 'node:fs';

/** `ip netns exec NAME`, or nothing for the agent's own namespace. */
export function netnsPrefix(netns: string | undefined): string[] {
  return netns ? ['ip', 'netns', 'exec', netns] : [];
}

/** True when `pid` runs in the namespace named `netns` now (always, without a name). */
export function inNamedNetns(pid: number | undefined, netns: string | undefined): boolean {
  if (!netns || pid === undefined) return true;
  try {
    return statSync(`/run/netns/${netns}`).ino === statSync(`/proc/${pid}/ns/net`).ino;
  } catch {
    return false;
  }
}
