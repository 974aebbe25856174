// Pod objects as a cluster writes them (pure): the ReplicaSet controller's create and the
// scheduler's binding on Kubernetes 1.34 (the kubelet's reports: bench/kubelet-status.ts). The
// apiserver adds defaults, tolerations, qosClass and managedFields itself, as for the real writers.
import { createHash } from 'node:crypto';

export const IMAGE = 'registry.k8s.io/e2e-test-images/agnhost:2.53';
export const MOUNT = '/var/run/secrets/kubernetes.io/serviceaccount';

export interface PodIdentity {
  namespace: string;
  name: string;
  labels: Record<string, string>;
  containerPort: number;
  /** Set for pods created already bound (the initial population); churn pods are bound with binding(). */
  nodeName?: string;
}

export const hex = (text: string, n: number) => createHash('sha256').update(text).digest('hex').slice(0, n);
const ALNUM = 'bcdfghjklmnpqrstvwxz2456789'; // the alphabet of generated names (k8s.io/apimachinery rand)

/** A generated-looking suffix of `n` characters, stable for `seed`. */
export function suffix(seed: string, n: number): string {
  const h = createHash('sha256').update(seed).digest();
  return Array.from({ length: n }, (_, i) => ALNUM[h[i] % ALNUM.length]).join('');
}

/** The pod-template-hash and ReplicaSet of the Deployment named by namespace and app label. */
export function replicaSetOf(namespace: string, app: string): { name: string; hash: string; uid: string } {
  const hash = suffix(`rs/${namespace}/${app}`, 10);
  return { name: `${app}-${hash}`, hash, uid: uuid(`rs/${namespace}/${app}`) };
}

export function uuid(seed: string): string {
  const h = hex(seed, 32);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** The projected service-account token volume ServiceAccount admission would add. */
export function volumeName(p: PodIdentity): string {
  return `kube-api-access-${suffix(`vol/${p.namespace}/${p.name}`, 5)}`;
}

/** The body the ReplicaSet controller POSTs (fieldManager kube-controller-manager). */
export function controllerPod(p: PodIdentity): Record<string, unknown> {
  const rs = replicaSetOf(p.namespace, p.labels.app ?? 'app');
  const volume = volumeName(p);
  const probe = (initialDelaySeconds: number) => ({
    httpGet: { path: '/healthz', port: 'http', scheme: 'HTTP' },
    initialDelaySeconds, timeoutSeconds: 1, periodSeconds: 10, successThreshold: 1, failureThreshold: 3,
  });
  const fieldEnv = (name: string, fieldPath: string) => ({ name, valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath } } });
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: p.name,
      generateName: `${rs.name}-`,
      namespace: p.namespace,
      labels: { ...p.labels, 'pod-template-hash': rs.hash },
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: rs.name, uid: rs.uid, controller: true, blockOwnerDeletion: true }],
    },
    spec: {
      ...(p.nodeName ? { nodeName: p.nodeName } : {}),
      containers: [{
        name: 'app',
        image: IMAGE,
        args: ['netexec', `--http-port=${p.containerPort}`],
        ports: [{ name: 'http', containerPort: p.containerPort, protocol: 'TCP' }],
        env: [fieldEnv('POD_NAME', 'metadata.name'), fieldEnv('POD_NAMESPACE', 'metadata.namespace'), fieldEnv('POD_IP', 'status.podIP')],
        resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '256Mi' } },
        readinessProbe: probe(0),
        livenessProbe: probe(10),
        volumeMounts: [{ name: volume, mountPath: MOUNT, readOnly: true }],
        terminationMessagePath: '/dev/termination-log',
        terminationMessagePolicy: 'File',
        imagePullPolicy: 'IfNotPresent',
      }],
      restartPolicy: 'Always',
      terminationGracePeriodSeconds: 30,
      dnsPolicy: 'ClusterFirst',
      serviceAccountName: 'default',
      serviceAccount: 'default',
      securityContext: {},
      schedulerName: 'default-scheduler',
      enableServiceLinks: true,
      // What ServiceAccount admission adds (disabled on the bench's apiserver: no token controller).
      volumes: [{
        name: volume,
        projected: {
          defaultMode: 420,
          sources: [
            { serviceAccountToken: { expirationSeconds: 3607, path: 'token' } },
            { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
            { downwardAPI: { items: [{ path: 'namespace', fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } }] } },
          ],
        },
      }],
    },
  };
}

/** The scheduler's POST to pods/<name>/binding. */
export function binding(namespace: string, name: string, node: string): Record<string, unknown> {
  return { apiVersion: 'v1', kind: 'Binding', metadata: { name, namespace }, target: { apiVersion: 'v1', kind: 'Node', name: node } };
}
