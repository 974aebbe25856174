// The pure helpers of `npm run bench -- watch-cost`: the /metrics parser, the kubelet-shaped pod
// reports, the watch stream's event counting and resume point, the churn model's bookkeeping and
// the host load reader.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { byLabel, parseMetrics, total } from '../../bench/prom-text.ts';
import { binding, controllerPod, type PodIdentity } from '../../bench/kubelet-pod.ts';
import { kubeletStatus, type KubeletState } from '../../bench/kubelet-status.ts';
import { WatchStream } from '../../bench/watch-stream.ts';
import { WatchLines } from '../../bench/watch-lines.ts';
import { ClusterModel, prng, type ModelPod } from '../../bench/churn-model.ts';
import { hostBusySeconds } from '../../bench/host-load.ts';

test('metrics text: labels with escapes, untyped samples, sums and groups by label', () => {
  const samples = parseMetrics([
    '# HELP apiserver_request_total Counter of apiserver requests',
    '# TYPE apiserver_request_total counter',
    'apiserver_request_total{code="201",resource="pods",subresource="",verb="POST"} 3',
    'apiserver_request_total{code="200",resource="pods",subresource="status",verb="PATCH"} 5',
    'apiserver_request_total{code="409",resource="pods",subresource="",verb="POST"} 1',
    'weird{msg="a \\"quoted\\", comma\\\\",x="1"} 2.5e3',
    'etcd_disk_wal_write_bytes_total 282920',
    'le_inf{le="+Inf"} +Inf',
    '',
  ].join('\n'));
  assert.equal(samples.length, 6);
  assert.deepEqual(samples[3].labels, { msg: 'a "quoted", comma\\', x: '1' });
  assert.equal(samples[3].value, 2500);
  assert.equal(total(samples, 'etcd_disk_wal_write_bytes_total'), 282920);
  assert.equal(total(samples, 'apiserver_request_total', { code: (c) => c.startsWith('2') }), 8);
  assert.equal(total(samples, 'apiserver_request_total', { verb: ['POST'] }), 4);
  assert.deepEqual(byLabel(samples, 'apiserver_request_total', 'subresource'), { '': 4, status: 5 });
  assert.equal(samples[5].value, Infinity);
  assert.equal(total(samples, 'missing'), 0);
});

test('kubelet reports walk Pending/ContainerCreating → Running → Ready and keep transition times', () => {
  const id: PodIdentity = { namespace: 'ns-1', name: 'app-3-abc-xyz12', labels: { app: 'app-3', tier: 'tier-0' }, containerPort: 8001 };
  const pod = controllerPod(id) as { metadata: Record<string, unknown>; spec: Record<string, unknown> };
  assert.equal(pod.spec.nodeName, undefined, 'the controller creates unbound pods');
  assert.equal((pod.metadata.labels as Record<string, string>)['pod-template-hash'].length, 10);
  assert.equal(controllerPod({ ...id, nodeName: 'node-1' }).spec && (controllerPod({ ...id, nodeName: 'node-1' }).spec as { nodeName: string }).nodeName, 'node-1');
  assert.deepEqual((binding('ns-1', id.name, 'node-1') as { target: unknown }).target, { apiVersion: 'v1', kind: 'Node', name: 'node-1' });

  const s: KubeletState = { hostIP: '172.16.0.10', podIP: '10.64.0.9', since: 'T0', ready: false };
  type Status = { phase: string; podIP?: string; conditions: Array<{ type: string; status: string; lastTransitionTime: string }>; containerStatuses: Array<{ ready: boolean; started: boolean; state: Record<string, unknown>; containerID?: string }> };
  const at = (stage: Parameters<typeof kubeletStatus>[2], now: string) => (kubeletStatus(id, s, stage, now) as { status: Status }).status;
  const cond = (st: Status, type: string) => st.conditions.find((c) => c.type === type)!;

  const creating = at('creating', 'T1');
  assert.equal(creating.phase, 'Pending');
  assert.equal(creating.podIP, undefined);
  assert.deepEqual(creating.containerStatuses[0].state, { waiting: { reason: 'ContainerCreating' } });
  assert.equal(creating.containerStatuses[0].containerID, undefined);
  assert.equal(cond(creating, 'PodReadyToStartContainers').status, 'False');

  const started = at('started', 'T2');
  assert.equal(started.phase, 'Running');
  assert.equal(started.podIP, '10.64.0.9');
  assert.equal(started.containerStatuses[0].started, true);
  assert.equal(started.containerStatuses[0].ready, false);
  assert.match(started.containerStatuses[0].containerID!, /^containerd:\/\/[0-9a-f]{64}$/);

  const ready = at('ready', 'T3');
  assert.equal(cond(ready, 'Ready').status, 'True');
  assert.equal(cond(ready, 'Ready').lastTransitionTime, 'T3');
  assert.deepEqual(ready.containerStatuses[0].state, { running: { startedAt: 'T2' } });
  assert.equal(cond(ready, 'PodScheduled').lastTransitionTime, 'T0');

  const unready = at('unready', 'T4');
  assert.equal(cond(unready, 'Ready').status, 'False');
  assert.equal(cond(unready, 'Ready').lastTransitionTime, 'T4');
  assert.equal(at('ready', 'T5').containerStatuses[0].ready, true);
  const terminating = at('terminating', 'T6');
  assert.ok('terminated' in terminating.containerStatuses[0].state);
  assert.equal(cond(terminating, 'Ready').status, 'False');
});

test('watch lines: events by type, and the resourceVersion to resume from, lines split anywhere', () => {
  const body = Buffer.from([
    '{"type":"MODIFIED","object":{"kind":"Pod","metadata":{"name":"a","resourceVersion":"101"}}}',
    '{"type":"BOOKMARK","object":{"kind":"Pod","metadata":{"resourceVersion":"105"}}}',
    '{"type":"DELETED","object":{"kind":"Pod","metadata":{"name":"x","resourceVersion":"107","ownerReferences":[]}}}',
    '{"type":"ERROR","object":{"kind":"Status","code":410}}',
    '{"type":"MODIFIED","object":{"kind":"Pod","metadata":{"name":"b","resourceVersion":"109"',
  ].join('\n'));
  for (const step of [1, 7, 64, body.length]) {
    const lines = new WatchLines('100');
    for (let i = 0; i < body.length; i += step) lines.push(body.subarray(i, i + step));
    assert.deepEqual([lines.events, lines.bookmarks, lines.errors, lines.errorSeen], [2, 1, 1, true], `step ${step}`);
    // The incomplete last line does not count: a resume repeats it.
    assert.equal(lines.lastRV, '107', `step ${step}`);
    lines.restart();
    lines.push(Buffer.from('{"type":"ADDED","object":{"metadata":{"resourceVersion":"110"}}}\n'));
    assert.equal(lines.lastRV, '110');
  }
});

test('a watch resumes where it was; a relist asks for no bookmarks', () => {
  const stream = new WatchStream({ node: 0, kind: 'pods', base: '/api/v1/pods', query: { allowWatchBookmarks: 'true' } }, '100');
  assert.equal(stream.path(true), '/api/v1/pods?allowWatchBookmarks=true&watch=true&resourceVersion=100');
  stream.lines.push(Buffer.from('{"type":"MODIFIED","object":{"metadata":{"resourceVersion":"120"}}}\n'));
  assert.equal(stream.path(true), '/api/v1/pods?allowWatchBookmarks=true&watch=true&resourceVersion=120');
  assert.equal(stream.path(false), '/api/v1/pods?');
});

test('churn model: quiet nodes are never picked, removed pods never come back, addresses recycle', () => {
  const model = new ClusterModel(8, ['ns-0'], 4);
  assert.deepEqual(model.quietNodes.map((n) => n.index), [3, 7]);
  const rng = prng(1);
  const pods: ModelPod[] = model.nodes.map((node) => ({ id: { namespace: 'ns-0', name: `p${node.index}`, labels: { app: 'a' }, containerPort: 80 }, node, ip: model.allocate(node)!, state: { hostIP: node.hostIP, since: '', ready: true }, busy: false }));
  for (const p of pods) model.add(p);
  assert.equal(model.size, 6);
  for (let i = 0; i < 200; i++) assert.ok(!model.pick(rng)!.node.quiet);
  model.remove(pods[0]);
  for (let i = 0; i < 200; i++) assert.notEqual(model.pick(rng), pods[0]);
  for (let i = 0; i < 200; i++) assert.ok(!model.randomActiveNode(rng).quiet);
  const ip = pods[0].ip;
  model.release(pods[0].node, ip);
  assert.equal(model.allocate(pods[0].node), ip);
  assert.equal(model.allocate(pods[1].node, '10.64.1.9'), '10.64.1.9');
  assert.ok(!model.nodes[1].free.includes('10.64.1.9'));
});

test('host busy time from /proc/stat: user, nice, system, irq, softirq and steal; not idle or iowait', () => {
  assert.equal(hostBusySeconds('cpu  100 5 50 9000 300 2 3 40 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n'), 2);
});
