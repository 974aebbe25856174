// NetworkPolicyPort matching, including named ports resolved on the flow's destination pod.
import type { V1NetworkPolicyPort, V1Pod } from '@kubernetes/client-node';
import type { Flow } from '../model/cluster.ts';

export function portMatches(rulePort: V1NetworkPolicyPort, flow: Flow, destinationPod: V1Pod | undefined): boolean {
  const protocol = rulePort.protocol ?? 'TCP';
  if (protocol !== flow.protocol) return false;
  const port = rulePort.port;
  if (port == null) return true;
  if (typeof port === 'number') {
    // endPort widens a numeric port into an inclusive range; the API server rejects it anywhere else.
    return rulePort.endPort != null ? port <= flow.port && flow.port <= rulePort.endPort : port === flow.port;
  }
  return namedPortMatches(port, flow, destinationPod);
}

/**
 * A name means whatever the destination pod calls that port, so it can only match traffic
 * to a pod, and only on the container port number and protocol the pod declares.
 */
function namedPortMatches(name: string, flow: Flow, destinationPod: V1Pod | undefined): boolean {
  if (!destinationPod) return false;
  for (const container of destinationPod.spec?.containers ?? []) {
    for (const cp of container.ports ?? []) {
      if (cp.name === name && (cp.protocol ?? 'TCP') === flow.protocol && cp.containerPort === flow.port) return true;
    }
  }
  return false;
}
