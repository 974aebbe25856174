// The Windows dataplane as `fencer agent` builds it on a Windows node, configured from the environment
// the DaemonSet sets (docs/windows.md):
// - NODE_IP: the node's addresses, comma-separated (downward API status.hostIP): allowed In on every
//   isolated pod, so kubelet probes pass as on Linux;
// - FENCER_HNS_NETWORK: the pods' HNS network (default "azure");
// - FENCER_HNS_INGRESS_PEER_FIELD: LocalAddresses (default, Azure NPM's) or RemoteAddresses;
// - FENCER_HNS_SCTP=false: the node's HNS rejects protocol 132 (SCTP rules then allow nothing).
import type { Registry } from 'prom-client';
import { npmWindowsMetrics } from '../../../runtime/npm-metrics.ts';
import { WindowsDataplane } from './dataplane.ts';
import type { IngressPeerField } from './hns-types.ts';
import { PowerShellHnsClient } from './powershell-client.ts';

export function windowsDataplaneFromEnv(registry?: Registry, env: NodeJS.ProcessEnv = process.env): WindowsDataplane {
  const field = env.FENCER_HNS_INGRESS_PEER_FIELD;
  if (field !== undefined && field !== 'LocalAddresses' && field !== 'RemoteAddresses') throw new Error(`FENCER_HNS_INGRESS_PEER_FIELD must be LocalAddresses or RemoteAddresses, not "${field}"`);
  return new WindowsDataplane({
    client: new PowerShellHnsClient({ network: env.FENCER_HNS_NETWORK || undefined }),
    metrics: registry ? npmWindowsMetrics(registry) : undefined,
    translate: {
      hostIPs: (env.NODE_IP ?? '').split(',').map((s) => s.trim()).filter((s) => /^\d+\.\d+\.\d+\.\d+$/.test(s)),
      ingressPeerField: field as IngressPeerField | undefined,
      sctp: env.FENCER_HNS_SCTP !== 'false',
    },
  });
}
