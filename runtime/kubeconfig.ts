// The one way Fencer's processes find their cluster: a kubeconfig path if given, otherwise
// $KUBECONFIG, ~/.kube/config, then the in-cluster ServiceAccount (client-node's default order).
import { KubeConfig } from '@kubernetes/client-node';
import { reuseConnections } from './kube-connections.ts';

export function loadKubeConfig(path?: string): KubeConfig {
  const kc = new KubeConfig();
  if (path) kc.loadFromFile(path);
  else kc.loadFromDefault();
  return reuseConnections(kc);
}
