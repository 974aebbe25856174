// The kubelet's pods/status reports (pure; times are passed in) on Kubernetes 1.34: Pending with
// the container in ContainerCreating, Running (podIP, container started, not ready yet), Ready,
// readiness flips, and the container terminated on deletion, with the conditions' transition times
// kept between reports as a kubelet keeps them.
import { hex, IMAGE, MOUNT, volumeName, type PodIdentity } from './kubelet-pod.ts';

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
  const volume = volumeName(p);
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
