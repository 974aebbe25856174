// Named ports resolve on the destination pod, by name and protocol (container ports default to TCP).
import type { V1Pod } from '../../model/cluster.ts';
import type { Protocol } from '../../model/cluster.ts';

export function resolveNamedPort(pod: V1Pod, name: string, protocol: Protocol): number | undefined {
  for (const c of pod.spec?.containers ?? []) {
    for (const p of c.ports ?? []) {
      if (p.name === name && (p.protocol ?? 'TCP') === protocol) return p.containerPort;
    }
  }
  return undefined;
}

/** The ipPort set entry for a pod's resolved named port: "IP,protocol:port" (ipset's own syntax). */
export function ipPortEntry(ip: string, protocol: Protocol, port: number): string {
  return `${ip},${protocol.toLowerCase()}:${port}`;
}
