// Which ports to explain: those given with --port (80, 80/TCP, TCP/80, or a named port of the
// destination pod), or by default every port the destination pod declares.
import type { Protocol, V1Pod } from '../model/cluster.ts';
import { PROTOCOLS } from '../model/cluster.ts';
import { resolveNamedPort } from '../operator/compile/named-ports.ts';
import { InspectError, listSome } from './errors.ts';
import type { ResolvedEndpoint } from './endpoints.ts';

export interface PortChoice { protocol: Protocol; port: number; /** The container port's name, when the destination declares one. */ name?: string }

export function portLabel(p: { protocol: Protocol; port: number }): string {
  return `${p.port}/${p.protocol}`;
}

export function choosePorts(args: string[] | undefined, destination: ResolvedEndpoint): PortChoice[] {
  if (args && args.length > 0) return dedupe(args.map((a) => parsePort(a, destination)));
  const declared = declaredPorts(destination.object);
  if (declared.length === 0) {
    const who = destination.pod ? `${destination.pod} declares no container ports` : `${destination.ip} is not a pod, so it declares no ports`;
    throw new InspectError(`${who}: give the port to explain, e.g. --port 80/TCP`);
  }
  return declared;
}

function parsePort(arg: string, destination: ResolvedEndpoint): PortChoice {
  const m = /^([A-Za-z]+)\/(.+)$/.exec(arg) ?? null;
  let spec = arg;
  let protocol: string | undefined;
  if (m && PROTOCOLS.includes(m[1].toUpperCase() as Protocol)) [spec, protocol] = [m[2], m[1]];
  else {
    const cut = arg.lastIndexOf('/');
    if (cut >= 0) [spec, protocol] = [arg.slice(0, cut), arg.slice(cut + 1)];
  }
  const proto = (protocol ?? 'TCP').toUpperCase() as Protocol;
  if (!PROTOCOLS.includes(proto)) throw new InspectError(`--port ${arg}: unknown protocol "${protocol}" (TCP, UDP or SCTP)`);
  if (/^\d+$/.test(spec)) {
    const port = Number(spec);
    if (port < 1 || port > 65535) throw new InspectError(`--port ${arg}: ${port} is not a port number (1-65535)`);
    const name = declaredPorts(destination.object).find((d) => d.port === port && d.protocol === proto)?.name;
    return name === undefined ? { protocol: proto, port } : { protocol: proto, port, name };
  }
  // A named port, as a policy would name it: it resolves on the destination pod.
  if (!destination.object || !destination.pod) throw new InspectError(`--port ${arg}: a named port needs a destination pod to resolve on; ${destination.ip} is not a pod`);
  const port = resolveNamedPort(destination.object, spec, proto);
  if (port === undefined) {
    const names = declaredPorts(destination.object).filter((d) => d.name).map((d) => `${d.name} (${portLabel(d)})`);
    throw new InspectError(`--port ${arg}: ${destination.pod} has no ${proto} port named "${spec}"; its named ports: ${listSome(names)}`);
  }
  return { protocol: proto, port, name: spec };
}

/** Every container port of the pod, in declaration order, without repeats. */
export function declaredPorts(pod: V1Pod | undefined): PortChoice[] {
  const out: PortChoice[] = [];
  for (const c of pod?.spec?.containers ?? []) for (const p of c.ports ?? []) {
    const protocol = ((p.protocol ?? 'TCP').toUpperCase()) as Protocol;
    if (!PROTOCOLS.includes(protocol)) continue;
    out.push(p.name ? { protocol, port: p.containerPort, name: p.name } : { protocol, port: p.containerPort });
  }
  return dedupe(out);
}

function dedupe(ports: PortChoice[]): PortChoice[] {
  const seen = new Set<string>();
  return ports.filter((p) => {
    const k = portLabel(p);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}
