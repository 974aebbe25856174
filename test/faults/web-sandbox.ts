// A small sandbox many fault tests start from: two nodes, web and other on the first, client on the
// second, and one policy letting client pods reach web:80. Agents run in-process.
import type { V1NetworkPolicy } from '@kubernetes/client-node';
import type { Cluster } from '../../localcluster/control-plane.ts';
import type { LinuxBackend } from '../../agent/dataplane/choose.ts';
import { silentLogger } from '../../runtime/log.ts';
import { resetCluster } from '../../sandbox/reset.ts';
import { Sandbox } from '../../sandbox/sandbox.ts';
import { applyPolicy, pod, waitConverged } from './harness.ts';
import { metricValue } from './processes.ts';

export function clientToWebPolicy(namespace: string): V1NetworkPolicy {
  return {
    apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { namespace, name: 'web' },
    spec: { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ from: [{ podSelector: { matchLabels: { role: 'client' } } }], ports: [{ protocol: 'TCP', port: 80 }] } as never] },
  };
}

export interface WebSandboxOptions {
  cluster: Cluster;
  namespace: string;
  nodes: [string, string];
  prefix: string;
  driftSeconds: number;
  dataplane?: LinuxBackend;
}

export async function startWebSandbox(o: WebSandboxOptions): Promise<Sandbox> {
  const [first, second] = o.nodes;
  await resetCluster(o.cluster.kubeConfig(), new Map([[o.namespace, {}]]));
  const sandbox = await Sandbox.start({
    cluster: o.cluster, nodes: [{ name: first, podCIDR: '10.244.1.0/24' }, { name: second, podCIDR: '10.244.2.0/24' }],
    prefix: o.prefix, log: silentLogger(), driftSeconds: o.driftSeconds, dataplane: o.dataplane,
  });
  try {
    await sandbox.addPod(pod(o.namespace, 'web', first, '10.244.1.10', { app: 'web' }));
    await sandbox.addPod(pod(o.namespace, 'other', first, '10.244.1.11', { role: 'other' }));
    await sandbox.addPod(pod(o.namespace, 'client', second, '10.244.2.10', { role: 'client' }));
    await applyPolicy(sandbox.kc, clientToWebPolicy(o.namespace));
    await waitConverged(sandbox.kc, o.nodes);
    return sandbox;
  } catch (e) {
    await stopWebSandbox(sandbox, o.namespace, o.nodes);
    throw e;
  }
}

export async function stopWebSandbox(sandbox: Sandbox | undefined, namespace: string, nodes: string[]): Promise<void> {
  await sandbox?.stop();
  await sandbox?.kubelet.deleteNamespace(namespace).catch(() => undefined);
  for (const n of nodes) await sandbox?.kubelet.deleteNode(n).catch(() => undefined);
}

/** fencer_agent_drift_repairs_total of an in-process agent. */
export async function driftRepairs(sandbox: Sandbox, node: string): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${sandbox.agents.get(node)!.metricsPort}/node-metrics`);
  return metricValue(await res.text(), 'fencer_agent_drift_repairs_total');
}
