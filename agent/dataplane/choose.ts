// Which Linux dataplane an agent runs: the one `--dataplane` names, or for `auto` nftables where
// the node already runs on it (kube-proxy in nftables mode, or Fencer's own table left by an
// earlier agent) and iptables otherwise — what Azure NPM and earlier Fencer releases program.
import { preferNftables, type NftablesProbe } from './nftables/backend.ts';

export type LinuxBackend = 'iptables' | 'nftables';
export type DataplaneFlag = 'auto' | LinuxBackend | 'linux' | 'windows';

export const DATAPLANE_FLAGS: readonly DataplaneFlag[] = ['auto', 'iptables', 'nftables', 'windows', 'linux'];

export function parseDataplaneFlag(value: string): DataplaneFlag {
  if (!(DATAPLANE_FLAGS as readonly string[]).includes(value)) throw new Error(`--dataplane must be one of auto, iptables, nftables, windows (not "${value}")`);
  return value as DataplaneFlag;
}

export interface BackendChoice { backend: LinuxBackend; reason: string }

export function chooseBackend(flag: Exclude<DataplaneFlag, 'windows'>, probe: NftablesProbe): BackendChoice {
  // "linux" is what --dataplane said before nftables existed: the ipset/iptables dataplane.
  if (flag === 'iptables' || flag === 'linux') return { backend: 'iptables', reason: `--dataplane ${flag}` };
  if (flag === 'nftables') {
    if (!probe.available) throw new Error('--dataplane nftables: nft does not work on this node (is the nftables package installed and nf_tables in the kernel?)');
    return { backend: 'nftables', reason: '--dataplane nftables' };
  }
  if (preferNftables(probe)) return { backend: 'nftables', reason: probe.fencerTable ? 'auto: Fencer\'s nftables table is already there' : 'auto: kube-proxy runs in nftables mode' };
  return { backend: 'iptables', reason: probe.available ? 'auto: neither kube-proxy nor Fencer uses nftables on this node' : 'auto: nft is not available' };
}
