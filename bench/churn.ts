// Pod churn as a cluster sees it, one pod write per tick (bench/pacer.ts), on the churned nodes only:
//   create  (5 writes) ReplicaSet controller's POST, scheduler's binding, kubelet: ContainerCreating,
//           Running (podIP, not ready yet), Ready;
//   delete  (3 writes) graceful DELETE (deletionTimestamp), kubelet: container terminated, not
//           ready; kubelet's final DELETE (grace 0, uid precondition);
//   flip    (1 write)  kubelet: readiness probe fails or recovers;
//   relabel (1 write)  `kubectl label` of the app label.
// One cycle of the mix is create, flip, relabel, flip, delete, flip: 12 writes.
import type { ApiClient } from './h2.ts';
import { binding, controllerPod, type PodIdentity } from './kubelet-pod.ts';
import { kubeletStatus, type Stage } from './kubelet-status.ts';
import type { ClusterModel, ModelPod } from './churn-model.ts';
import { Pacer, type Operation, type PaceResult, type Slot } from './pacer.ts';
import { MERGE, podName, timestamp } from './populate.ts';

export type OpKind = 'create' | 'delete' | 'flip' | 'relabel';
const CYCLE: OpKind[] = ['create', 'flip', 'relabel', 'flip', 'delete', 'flip'];
const APPS = 10;

export interface ChurnResult extends PaceResult {
  rate: number;
  /** Pod writes the apiserver accepted, in all and by writer step. */
  writes: number;
  byStep: Record<string, number>;
  failed: number;
  failures: string[];
  ops: Record<OpKind, number>;
}

/** Watch events one accepted write produces: the kubelet's final DELETE first sets the grace period to 0 (MODIFIED), then removes the pod (DELETED). */
export const eventsOf = (step: string) => (step === 'kubelet delete' ? 2 : 1);

export async function churn(api: ApiClient, model: ClusterModel, rng: () => number, rate: number, seconds: number, onWrite?: (step: string) => void): Promise<ChurnResult> {
  const result: ChurnResult = { rate, seconds: 0, missedTicks: 0, unfinished: 0, writes: 0, byStep: {}, failed: 0, failures: [], ops: { create: 0, delete: 0, flip: 0, relabel: 0 } };
  const write = async (step: string, method: string, path: string, body?: unknown, contentType?: string): Promise<string> => {
    const res = await api.request(method, path, body, contentType);
    if (res.status < 200 || res.status > 299) {
      result.failed++;
      if (result.failures.length < 5) result.failures.push(`${step} ${method} ${path}: ${res.status} ${res.body.slice(0, 200)}`);
      throw new Error(`${step} failed`);
    }
    result.writes++;
    result.byStep[step] = (result.byStep[step] ?? 0) + 1;
    onWrite?.(step);
    return res.body;
  };
  const podPath = (id: PodIdentity, sub = '') => `/api/v1/namespaces/${id.namespace}/pods/${id.name}${sub}`;
  const report = (pod: ModelPod, stage: Stage) =>
    write(`kubelet ${stage}`, 'PATCH', `${podPath(pod.id, '/status')}?fieldManager=kubelet`, kubeletStatus(pod.id, pod.state, stage, timestamp()), MERGE);

  const create = (): Operation | undefined => {
    const node = model.randomActiveNode(rng);
    const ip = model.allocate(node);
    if (!ip) return undefined;
    const n = model.created++;
    const namespace = model.namespaces[Math.floor(rng() * model.namespaces.length)];
    const app = `app-${Math.floor(rng() * APPS)}`;
    const id: PodIdentity = { namespace, name: podName(namespace, app, `churn/${n}`), labels: { app, tier: `tier-${n % 3}` }, containerPort: 8000 + (n % 3) };
    const pod: ModelPod = { id, node, ip, state: { hostIP: node.hostIP, podIP: ip, since: '', ready: false }, busy: true };
    return async (slot: Slot) => {
      await slot();
      await write('create', 'POST', `/api/v1/namespaces/${namespace}/pods?fieldManager=kube-controller-manager`, controllerPod(id));
      await slot();
      await write('binding', 'POST', podPath(id, '/binding'), binding(namespace, id.name, node.name));
      pod.state.since = timestamp();
      for (const stage of ['creating', 'started', 'ready'] as const) {
        await slot();
        await report(pod, stage);
      }
      pod.busy = false;
      model.add(pod);
    };
  };

  const existing = (fn: (pod: ModelPod, slot: Slot) => Promise<void>): Operation | undefined => {
    const pod = model.pick(rng);
    if (!pod) return undefined;
    pod.busy = true;
    return async (slot: Slot) => {
      try {
        await fn(pod, slot);
      } finally {
        pod.busy = false;
      }
    };
  };

  const remove = () => existing(async (pod, slot) => {
    await slot();
    const body = await write('delete', 'DELETE', podPath(pod.id));
    const uid = /"uid":"([^"]+)"/.exec(body)?.[1];
    await slot();
    await report(pod, 'terminating');
    await slot();
    model.remove(pod);
    await write('kubelet delete', 'DELETE', podPath(pod.id), { apiVersion: 'v1', kind: 'DeleteOptions', gracePeriodSeconds: 0, preconditions: { uid } });
    model.release(pod.node, pod.ip);
  });

  const flip = () => existing(async (pod, slot) => {
    await slot();
    await report(pod, pod.state.ready ? 'unready' : 'ready');
  });

  const relabel = () => existing(async (pod, slot) => {
    const app = `app-${(Number(pod.id.labels.app.slice(4)) + 1 + Math.floor(rng() * (APPS - 1))) % APPS}`;
    await slot();
    await write('relabel', 'PATCH', `${podPath(pod.id)}?fieldManager=kubectl-label`, { metadata: { labels: { app } } }, MERGE);
    pod.id.labels.app = app;
  });

  let turn = 0;
  const next = (): Operation | undefined => {
    const kind = CYCLE[turn++ % CYCLE.length];
    const op = kind === 'create' ? create() : kind === 'delete' ? remove() : kind === 'flip' ? flip() : relabel();
    if (op) result.ops[kind]++;
    return op;
  };
  Object.assign(result, await new Pacer().run(rate, seconds, next));
  return result;
}
