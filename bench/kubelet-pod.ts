// Pod objects as a cluster writes them (pure; times are passed in): the ReplicaSet controller's
// create, the scheduler's binding, and the kubelet's status reports (Pending/ContainerCreating →
// Running → Ready, readiness flips, termination) on Kubernetes 1.34. The apiserver adds defaults,
// tolerations, qosClass and managedFields itself, as it does for the real writers.
import { createHash } from 'node:crypto';

export const IMAGE = 'registry.k8s.io/e2e-test-images/agnhost:2.53';
const MOUNT = '/var/run/secrets/kubernetes.io/serviceaccount';

export interface PodIdentity {
  namespace: string;
  name: string;
  labels: Record<string, string>;
  containerPort: number;
  /** Set for pods created already bound (the initial population); churn pods are bound with binding(). */
  nodeName?: string;
}

export type Stage = 'creating' | 'started' | 'ready' | 'unready' | 'terminating';

/** What the kubelet knows about its pod between reports. */
export interface KubeletState {
  hostIP: string;
  podIP?: string;
  /** When the pod was scheduled and the kubelet first saw it (startTime). */
  since: string;
  sandboxAt?: string;
  startedAt?: string;
  readyChangedAt?: string;
  ready: boolean;
}

const hex = (text: string, n: number) => createHash('sha256').update(text).digest('hex').slice(0, n);
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

/** The body the ReplicaSet controller POSTs (fieldManager kube-controller-manager). */
export function controllerPod(p: PodIdentity): Record<string, unknown> {
  const rs = replicaSetOf(p.namespace, p.labels.app ?? 'app');
  const volume = `kube-api-access-${suffix(`vol/${p.namespace}/${p.name}`, 5)}`;
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

/** The kubelet's pods/status report at a stage (a JSON merge patch: lists are sent whole); records the stage in `s`. */
export function kubeletStatus(p: PodIdentity, s: KubeletState, stage: Stage, now: string): Record<string, unknown> {
  const sandbox = stage !== 'creating';
  const running = stage === 'started' || stage === 'ready' || stage === 'unready';
  const ready = stage === 'ready';
  if (sandbox && !s.sandboxAt) s.sandboxAt = now;
  if (running && !s.startedAt) s.startedAt = now;
  if (ready !== s.ready) {
    s.ready = ready;
    s.readyChangedAt = now;
  }
  const cond = (type: string, status: boolean, since: string, reason?: string) => ({
    type, observedGeneration: 1, status: status ? 'True' : 'False', lastProbeTime: null, lastTransitionTime: since,
    ...(reason && !status ? { reason } : {}),
  });
  const volume = (controllerPod(p).spec as { volumes: Array<{ name: string }> }).volumes[0].name;
  const container = hex(`ctr/${p.namespace}/${p.name}`, 64);
  const state = running
    ? { running: { startedAt: s.startedAt } }
    : stage === 'terminating'
      ? { terminated: { exitCode: 143, reason: 'Error', startedAt: s.startedAt ?? s.since, finishedAt: now, containerID: `containerd://${container}` } }
      : { waiting: { reason: 'ContainerCreating' } };
  const readySince = s.readyChangedAt ?? s.since;
  return {
    status: {
      observedGeneration: 1,
      phase: stage === 'creating' ? 'Pending' : 'Running',
      conditions: [
        cond('PodReadyToStartContainers', sandbox, s.sandboxAt ?? s.since),
        cond('Initialized', true, s.since),
        cond('Ready', ready, readySince, 'ContainersNotReady'),
        cond('ContainersReady', ready, readySince, 'ContainersNotReady'),
        cond('PodScheduled', true, s.since),
      ],
      hostIP: s.hostIP,
      hostIPs: [{ ip: s.hostIP }],
      ...(s.podIP && sandbox ? { podIP: s.podIP, podIPs: [{ ip: s.podIP }] } : {}),
      startTime: s.since,
      containerStatuses: [{
        name: 'app',
        state,
        lastState: {},
        ready,
        restartCount: 0,
        image: IMAGE,
        imageID: stage === 'creating' ? '' : `registry.k8s.io/e2e-test-images/agnhost@sha256:${hex('agnhost:2.53', 64)}`,
        ...(stage === 'creating' ? {} : { containerID: `containerd://${container}` }),
        started: running,
        allocatedResources: { cpu: '100m', memory: '128Mi' },
        resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '256Mi' } },
        volumeMounts: [{ name: volume, mountPath: MOUNT, readOnly: true, recursiveReadOnly: 'Disabled' }],
        user: { linux: { uid: 0, gid: 0, supplementalGroups: [0, 1, 2, 3, 4, 6, 10, 11, 20, 26, 27] } },
      }],
    },
  };
}
