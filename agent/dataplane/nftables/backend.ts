// What a node offers for `--dataplane auto`: whether nft works at all, whether kube-proxy runs in
// nftables mode, and which of Fencer's two dataplanes already holds state there. The choice
// itself is preferNftables(); the caller also cleans up the other dataplane once the chosen one
// has applied, or the old rules would keep dropping what the new ones allow.
import type { KernelRunner } from '../linux/runner.ts';
import { FAMILY, TABLE } from './names.ts';

export interface NftablesProbe {
  /** `nft list tables` ran (the tool is installed and the kernel has nf_tables). */
  available: boolean;
  /** kube-proxy's own table (`ip kube-proxy` or `ip6 kube-proxy`) exists: it runs in nftables mode. */
  kubeProxy: boolean;
  /** Fencer's table exists: an agent used the nftables dataplane on this node before. */
  fencerTable: boolean;
}

export async function probeNftables(runner: KernelRunner): Promise<NftablesProbe> {
  let r;
  try {
    r = await runner.run('nft', ['-j', 'list', 'tables']);
  } catch {
    return { available: false, kubeProxy: false, fencerTable: false };
  }
  if (r.exitCode !== 0) return { available: false, kubeProxy: false, fencerTable: false };
  let tables: Array<{ family?: string; name?: string }> = [];
  try {
    tables = ((JSON.parse(r.stdout) as { nftables?: Array<{ table?: { family?: string; name?: string } }> }).nftables ?? []).flatMap((i) => (i.table ? [i.table] : []));
  } catch { /* an empty ruleset may print nothing */ }
  return {
    available: true,
    kubeProxy: tables.some((t) => t.name === 'kube-proxy' && (t.family === 'ip' || t.family === 'ip6')),
    fencerTable: tables.some((t) => t.family === FAMILY && t.name === TABLE),
  };
}

/**
 * nftables when nft works and either kube-proxy uses it or Fencer's table is already there (a
 * restarted agent stays on what it enforces with); iptables otherwise, as before this dataplane.
 */
export function preferNftables(p: NftablesProbe): boolean {
  return p.available && (p.kubeProxy || p.fencerTable);
}
