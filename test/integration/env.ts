// The shared control plane of a test run. scripts/test.ts (npm test) starts one kube-apiserver + etcd
// for the whole run and passes its admin kubeconfig down in FENCER_TEST_KUBECONFIG; integration test
// files attach to it here instead of starting their own.
import type { KubeConfig } from '@kubernetes/client-node';
import { attachCluster, type Cluster } from '../../localcluster/control-plane.ts';

let cluster: Cluster | undefined;

/** The shared cluster (admin kubeconfig, kubectl, installCrds, tokenFor, kubeConfigFor). */
export function testCluster(): Cluster {
  if (cluster) return cluster;
  const kubeconfigPath = process.env.FENCER_TEST_KUBECONFIG;
  if (!kubeconfigPath) {
    throw new Error(
      'FENCER_TEST_KUBECONFIG is not set: integration tests run against the control plane that `npm test` ' +
        '(node scripts/test.ts) starts. To run one file by hand, start a control plane with ' +
        '`node localcluster/control-plane.ts`, export the variables it prints, then `node --test <file>`.',
    );
  }
  cluster = attachCluster(kubeconfigPath, process.env.FENCER_TEST_BIN_DIR);
  return cluster;
}

/** A fresh admin KubeConfig for the shared cluster. */
export function testKubeConfig(): KubeConfig {
  return testCluster().kubeConfig();
}
