// What the oracle knows about each side of a flow: an address, and the pod that owns it if any.
import type { ClusterSnapshot, V1Pod } from '../model/cluster.ts';
import { podAddress } from '../model/cluster.ts';
import type { Labels } from './selectors.ts';

export interface Endpoint {
  ip: string;
  /** Undefined for an external address: never selected, only matchable by ipBlock. */
  pod?: V1Pod;
}

/** Objects stored by the API server always have a namespace; hand-built ones without one get kubectl's default. */
export function namespaceOf(o: { metadata?: { namespace?: string } }): string {
  return o.metadata?.namespace || 'default';
}

/** Two live pods cannot share an IP in a sane cluster; if they do, the first listed one wins. */
export function endpointFor(cluster: ClusterSnapshot, ip: string): Endpoint {
  const pod = cluster.pods.find((p) => podAddress(p) === ip);
  return pod ? { ip, pod } : { ip };
}

export function podLabels(pod: V1Pod): Labels {
  return pod.metadata?.labels ?? {};
}

/** Kubernetes always sets kubernetes.io/metadata.name, so it is present even when a snapshot omits it. */
export function namespaceLabels(cluster: ClusterSnapshot, name: string): Labels {
  const ns = cluster.namespaces.find((n) => n.metadata?.name === name);
  return { ...(ns?.metadata?.labels ?? {}), 'kubernetes.io/metadata.name': name };
}
