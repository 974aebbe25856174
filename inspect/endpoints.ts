// Resolves what the user typed for --from/--to (NAMESPACE/POD or an IPv4 address) against a cluster
// snapshot, with errors that list what does exist.
import type { ClusterSnapshot, V1Pod } from '../model/cluster.ts';
import { objectKey, podAddress } from '../model/cluster.ts';
import { InspectError, listSome } from './errors.ts';

export interface ResolvedEndpoint {
  /** What the user typed. */
  arg: string;
  ip: string;
  /** namespace/name of the pod owning the address, when one does. */
  pod?: string;
  /** The node the pod runs on. */
  node?: string;
  /** True when Fencer can enforce policies on this side: an addressable, non-hostNetwork pod. */
  enforceable: boolean;
  /** Why the side is not a policy-enforced pod (external address, hostNetwork pod), as a clause. */
  note?: string;
  object?: V1Pod;
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

export function resolveEndpoint(snapshot: ClusterSnapshot, arg: string, flag: string): ResolvedEndpoint {
  if (IPV4.test(arg)) return byAddress(snapshot, arg);
  const m = /^([^/\s]+)\/([^/\s]+)$/.exec(arg);
  if (!m) throw new InspectError(`${flag} ${arg}: expected NAMESPACE/POD or an IPv4 address`);
  return byName(snapshot, m[1], m[2]);
}

function byAddress(snapshot: ClusterSnapshot, ip: string): ResolvedEndpoint {
  const pod = snapshot.pods.find((p) => podAddress(p) === ip);
  if (pod) return podEndpoint(ip, pod, ip);
  const host = snapshot.pods.find((p) => p.spec?.hostNetwork && p.status?.podIP === ip);
  if (host) return { arg: ip, ip, node: host.spec?.nodeName, enforceable: false, note: hostNetworkNote(host) };
  return { arg: ip, ip, enforceable: false, note: `${ip} is not the address of any pod` };
}

function byName(snapshot: ClusterSnapshot, namespace: string, name: string): ResolvedEndpoint {
  const arg = `${namespace}/${name}`;
  const pod = snapshot.pods.find((p) => (p.metadata?.namespace || 'default') === namespace && p.metadata?.name === name);
  if (!pod) {
    const inNs = snapshot.pods.filter((p) => (p.metadata?.namespace || 'default') === namespace).map((p) => p.metadata?.name ?? '?').sort();
    if (inNs.length > 0) throw new InspectError(`no pod ${arg}; pods in ${namespace}: ${listSome(inNs)}`);
    const namespaces = [...new Set([...snapshot.namespaces.map((n) => n.metadata?.name ?? '?'), ...snapshot.pods.map((p) => p.metadata?.namespace || 'default')])].sort();
    const known = snapshot.namespaces.some((n) => n.metadata?.name === namespace);
    throw new InspectError(known
      ? `no pod ${arg}; namespace ${namespace} has no pods`
      : `no pod ${arg}: there is no namespace ${namespace}; namespaces: ${listSome(namespaces)}`);
  }
  if (pod.spec?.hostNetwork) {
    const ip = pod.status?.podIP ?? pod.status?.hostIP;
    if (!ip) throw new InspectError(`pod ${arg} uses the host network and its node has not reported an address yet`);
    return { arg, ip, pod: arg, node: pod.spec?.nodeName, enforceable: false, note: hostNetworkNote(pod), object: pod };
  }
  const phase = pod.status?.phase;
  if (phase === 'Succeeded' || phase === 'Failed') throw new InspectError(`pod ${arg} has finished (phase ${phase}): it has no address any more`);
  const ip = podAddress(pod);
  if (!ip) {
    if (pod.status?.podIP) throw new InspectError(`pod ${arg} has the address ${pod.status.podIP}, which is not IPv4: Fencer enforces IPv4 only`);
    throw new InspectError(`pod ${arg} has no IP address yet (phase ${phase ?? 'unknown'}${pod.spec?.nodeName ? `, node ${pod.spec.nodeName}` : ', not scheduled'}): explain it once it runs`);
  }
  return podEndpoint(arg, pod, ip);
}

function podEndpoint(arg: string, pod: V1Pod, ip: string): ResolvedEndpoint {
  return { arg, ip, pod: objectKey({ metadata: { namespace: pod.metadata?.namespace || 'default', name: pod.metadata?.name } }), node: pod.spec?.nodeName, enforceable: true, object: pod };
}

function hostNetworkNote(pod: V1Pod): string {
  return `${pod.metadata?.namespace || 'default'}/${pod.metadata?.name} uses the host network (Fencer enforces no policy on hostNetwork pods: docs/decisions.md §5)`;
}

/** "x/a (10.244.1.10)" or "203.0.113.9". */
export function endpointLabel(e: ResolvedEndpoint): string {
  return e.pod ? `${e.pod} (${e.ip})` : e.ip;
}
