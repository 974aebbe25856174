// ServiceAccount tokens bound to a pod on a node, as a DaemonSet pod's projected token is: the
// apiserver then adds the node's name and uid to the token's user extra
// ("authentication.kubernetes.io/node-name"), which the chart's ValidatingAdmissionPolicy checks.
import { ApiException, CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { tokenKubeConfig } from '../../localcluster/control-plane.ts';

export { tokenKubeConfig };

/** A token for `serviceAccount`, bound to a pod (created if missing; named after both unless given) of that ServiceAccount on `node`. */
export async function nodeBoundToken(admin: KubeConfig, namespace: string, serviceAccount: string, node: string, podName = `${serviceAccount}-${node}`): Promise<string> {
  const core = admin.makeApiClient(CoreV1Api);
  const name = podName.slice(0, 63).replace(/[^a-z0-9-]/g, '-').replace(/-+$/, '');
  let pod;
  try {
    pod = await core.createNamespacedPod({ namespace, body: { metadata: { name }, spec: { nodeName: node, serviceAccountName: serviceAccount, containers: [{ name: 'agent', image: 'fencer/agent' }] } } });
  } catch (e) {
    if (!(e instanceof ApiException && e.code === 409)) throw e;
    pod = await core.readNamespacedPod({ namespace, name });
  }
  const r = await core.createNamespacedServiceAccountToken({
    namespace, name: serviceAccount,
    body: { spec: { audiences: [], expirationSeconds: 3600, boundObjectRef: { kind: 'Pod', apiVersion: 'v1', name, uid: pod.metadata!.uid! } } },
  });
  const token = r.status?.token;
  if (!token) throw new Error(`TokenRequest for ${namespace}/${serviceAccount} returned no token`);
  return token;
}

/** The agent's KubeConfig as the chart's DaemonSet pod on `node` would have it. */
export async function kubeConfigForNode(admin: KubeConfig, namespace: string, serviceAccount: string, node: string): Promise<KubeConfig> {
  return tokenKubeConfig(admin, await nodeBoundToken(admin, namespace, serviceAccount, node), `${serviceAccount}@${node}`);
}
