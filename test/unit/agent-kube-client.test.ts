// The agent's own apiserver client (agent/kube/) against a scripted apiserver: what client-node's
// informer gave it must still hold — paged lists, bookmarks, relist on 410, back-off, pooled
// connections, a rotated token file — and a kubeconfig it cannot honour is refused by name.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fromKubeconfig, inCluster, loadClusterAccess } from '../../agent/kube/access.ts';
import { ListWatcher, type KubeObject } from '../../agent/kube/list-watch.ts';
import { KubeApiError, KubeTransport } from '../../agent/kube/transport.ts';
import { silentLogger } from '../../runtime/log.ts';
import { event, fakeApiserver, json, openWatch, type FakeApiserver } from '../helpers/fake-apiserver.ts';

const obj = (name: string, rv: string): KubeObject => ({ metadata: { name, resourceVersion: rv } });
const list = (rv: string, items: KubeObject[], cont?: string) => ({ kind: 'List', metadata: { resourceVersion: rv, ...(cont ? { continue: cont } : {}) }, items });
const until = async (what: string, ok: () => boolean, ms = 5000) => {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

function tempDir(t: { after(f: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'fencer-kube-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function server(t: { after(f: () => Promise<void> | void): void }): Promise<FakeApiserver> {
  const api = await fakeApiserver();
  t.after(api.close);
  return api;
}

function transportFor(api: FakeApiserver, extra: { token?: string; tokenFile?: string } = { token: 't' }): KubeTransport {
  return new KubeTransport({ server: api.url, source: 'test', ...extra });
}

function watcher(transport: KubeTransport, changes: string[]): ListWatcher<KubeObject> {
  const w = new ListWatcher<KubeObject>({ name: 'test', transport, path: '/apis/g/v1/things', labelSelector: 'a=b', log: silentLogger(), watchSeconds: [60, 60], idleGraceMs: 300 });
  w.onChange((type, o) => changes.push(`${type} ${o.metadata.name}@${o.metadata.resourceVersion}`));
  return w;
}

test('kubeconfig: inline data, files relative to the kubeconfig, a token file; plugins and missing parts refused by name', (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'ca.crt'), 'CA');
  const config = (user: string) => `
apiVersion: v1
kind: Config
current-context: c
contexts: [{name: c, context: {cluster: k, user: u}}]
clusters: [{name: k, cluster: {server: "https://10.0.0.1:6443/", certificate-authority: ca.crt, tls-server-name: api}}]
users: [{name: u, user: ${user}}]
`;
  const access = fromKubeconfig(config(`{client-certificate-data: ${Buffer.from('CERT').toString('base64')}, client-key-data: ${Buffer.from('KEY').toString('base64')}, tokenFile: token}`), join(dir, 'config'));
  assert.equal(access.server, 'https://10.0.0.1:6443');
  assert.equal(access.ca?.toString(), 'CA');
  assert.equal(access.cert?.toString(), 'CERT');
  assert.equal(access.key?.toString(), 'KEY');
  assert.equal(access.tokenFile, join(dir, 'token'));
  assert.equal(access.tlsServerName, 'api');
  assert.throws(() => fromKubeconfig(config('{exec: {command: aws}}'), 'cfg'), /kubeconfig cfg: user "u" uses an exec credential plugin/);
  assert.throws(() => fromKubeconfig(config('{}').replace('current-context: c', 'current-context: other'), 'cfg'), /context "other" is not defined/);
  assert.throws(() => fromKubeconfig('{}', 'cfg'), /no current-context/);
});

test('in-cluster: the service host (IPv6 bracketed), the mounted CA, the token read from its file', (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'ca.crt'), 'CA');
  const access = inCluster({ KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '443' }, dir);
  assert.equal(access.server, 'https://[fd00::1]:443');
  assert.equal(access.tokenFile, join(dir, 'token'));
  assert.throws(() => loadClusterAccess(undefined, { HOME: dir }), /no cluster to talk to/);
});

test('requests share kept-alive connections; a refusal carries the Status code and message; a merge patch says so', async (t) => {
  const api = await server(t);
  api.handle((req, res) => (req.method === 'PATCH' ? json(res, 409, { kind: 'Status', code: 409, reason: 'Conflict', message: 'the object has been modified' }) : json(res, 200, list('1', []))));
  const transport = transportFor(api);
  t.after(() => transport.close());
  for (let i = 0; i < 10; i++) await transport.request('GET', '/api/v1/namespaces');
  assert.ok(api.connections() <= 2, `${api.connections()} connections for 10 requests`);
  await assert.rejects(transport.request('PATCH', '/x/status', { body: { a: 1 }, contentType: 'application/merge-patch+json' }), (e: unknown) => e instanceof KubeApiError && e.code === 409 && e.reason === 'Conflict' && e.message === 'the object has been modified');
  assert.equal(api.requests.at(-1)?.contentType, 'application/merge-patch+json');
  assert.equal(api.requests.at(-1)?.authorization, 'Bearer t');
});

test('a token file rotated by rename is read again when the apiserver refuses the old token', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'token');
  writeFileSync(file, 'old\n');
  const api = await server(t);
  let valid = 'old';
  api.handle((req, res) => (req.authorization === `Bearer ${valid}` ? json(res, 200, list('1', [])) : json(res, 401, { kind: 'Status', code: 401, message: 'Unauthorized' })));
  const transport = transportFor(api, { tokenFile: file });
  t.after(() => transport.close());
  await transport.request('GET', '/a');
  // As the kubelet does: a new file renamed over the old one; the old token then stops working.
  writeFileSync(join(dir, 'token.tmp'), 'new\n');
  renameSync(join(dir, 'token.tmp'), file);
  valid = 'new';
  await transport.request('GET', '/b');
  assert.deepEqual(api.requests.map((r) => `${r.path} ${r.authorization}`), ['/a Bearer old', '/b Bearer old', '/b Bearer new']);
  valid = 'neither';
  await assert.rejects(transport.request('GET', '/c'), (e: unknown) => e instanceof KubeApiError && e.code === 401);
});

test('list pages through continue tokens, then watches from the list version with bookmarks; a watch the server ends resumes from the last version without listing', async (t) => {
  const api = await server(t);
  api.handle((req, res) => {
    if (req.query.get('watch') !== 'true') {
      return json(res, 200, req.query.get('continue') === 'p2' ? list('10', [obj('b', '9')]) : list('10', [obj('a', '8')], 'p2'));
    }
    openWatch(res);
  });
  const changes: string[] = [];
  const w = watcher(transportFor(api), changes);
  t.after(() => w.stop());
  await w.start();
  assert.deepEqual(changes, ['upsert a@8', 'upsert b@9']);
  assert.equal(api.requests[0].query.get('limit'), '500');
  assert.equal(api.requests[0].query.get('labelSelector'), 'a=b');
  await until('the watch', () => api.watches.length === 1);
  const first = api.requests.at(-1)!;
  assert.equal(first.query.get('resourceVersion'), '10');
  assert.equal(first.query.get('allowWatchBookmarks'), 'true');
  assert.equal(first.query.get('timeoutSeconds'), '60');
  const watch = api.watches[0];
  event(watch, 'MODIFIED', obj('a', '11'));
  event(watch, 'ADDED', obj('c', '12'));
  event(watch, 'DELETED', obj('b', '13'));
  event(watch, 'BOOKMARK', { metadata: { resourceVersion: '20' } });
  await until('the events', () => changes.length === 5);
  watch.end();
  await until('the next watch', () => api.requests.length === 4);
  assert.equal(api.requests.at(-1)!.query.get('watch'), 'true', 'no list in between');
  assert.equal(api.requests.at(-1)!.query.get('resourceVersion'), '20', 'from the bookmark');
  assert.deepEqual(changes.slice(2), ['upsert a@11', 'upsert c@12', 'delete b@9']);
  assert.deepEqual(w.items().map((o) => o.metadata.name).sort(), ['a', 'c']);
});

test('410 Gone relists at once and turns what vanished meanwhile into deletes; an unchanged object is not announced again', async (t) => {
  const api = await server(t);
  let lists = 0;
  api.handle((req, res) => {
    if (req.query.get('watch') !== 'true') return json(res, 200, ++lists === 1 ? list('5', [obj('a', '1'), obj('b', '2')]) : list('30', [obj('a', '1'), obj('c', '25')]));
    openWatch(res);
    if (lists === 1) event(res, 'ERROR', { kind: 'Status', code: 410, reason: 'Expired', message: 'too old resource version: 5 (20)' });
  });
  const changes: string[] = [];
  const w = watcher(transportFor(api), changes);
  t.after(() => w.stop());
  await w.start();
  await until('the relist', () => lists === 2 && changes.length === 4);
  assert.deepEqual(changes, ['upsert a@1', 'upsert b@2', 'upsert c@25', 'delete b@2']);
  await until('the watch from the new list', () => api.watches.length === 1);
  assert.equal(api.requests.at(-1)!.query.get('resourceVersion'), '30');
  assert.equal(w.restarts, 0, 'no back-off for a 410');
});

test('a failing watch backs off and relists, listing again until a list works', async (t) => {
  const api = await server(t);
  let lists = 0;
  let listsFail = false;
  api.handle((req, res) => {
    if (req.query.get('watch') !== 'true') {
      lists++;
      return listsFail ? json(res, 503, { kind: 'Status', code: 503, message: 'etcd unavailable' }) : json(res, 200, list(String(lists), [obj('a', '1')]));
    }
    json(res, 500, { kind: 'Status', code: 500, message: 'internal error' });
  });
  const w = watcher(transportFor(api), []);
  t.after(() => w.stop());
  await w.start();
  listsFail = true;
  await until('restarts', () => w.restarts >= 2, 8000);
  const failedLists = lists;
  assert.ok(failedLists >= 2, 'it kept listing');
  listsFail = false;
  await until('a good list and a watch after it', () => lists > failedLists && api.requests.at(-1)?.query.get('watch') === 'true', 8000);
  assert.equal(w.synced(), true);
});

test('a watch silent past its timeout is taken for a dead connection and replaced', async (t) => {
  const api = await server(t);
  api.handle((req, res) => (req.query.get('watch') !== 'true' ? json(res, 200, list('1', [])) : openWatch(res)));
  const w = new ListWatcher<KubeObject>({ name: 'silent', transport: transportFor(api), path: '/x', log: silentLogger(), watchSeconds: [0, 0], idleGraceMs: 200 });
  t.after(() => w.stop());
  await w.start();
  await until('a second watch', () => api.requests.filter((r) => r.query.get('watch') === 'true').length >= 2, 5000);
  assert.ok(w.restarts >= 1);
});

test('stop ends the watch and schedules nothing more', async (t) => {
  const api = await server(t);
  api.handle((req, res) => (req.query.get('watch') !== 'true' ? json(res, 200, list('1', [])) : openWatch(res)));
  const w = watcher(transportFor(api), []);
  await w.start();
  await until('the watch', () => api.watches.length === 1);
  await w.stop();
  await until('the watch to close', () => api.watches.length === 0);
  const count = api.requests.length;
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(api.requests.length, count);
});

test('the safety relist lists again on its own and turns an object a lost event hid into a delete', async (t) => {
  const api = await server(t);
  let lists = 0;
  api.handle((req, res) => (req.query.get('watch') !== 'true' ? json(res, 200, ++lists === 1 ? list('1', [obj('a', '1'), obj('b', '1')]) : list('2', [obj('a', '1')])) : openWatch(res)));
  const changes: string[] = [];
  const w = new ListWatcher<KubeObject>({ name: 'relist', transport: transportFor(api), path: '/x', log: silentLogger(), relistMs: 200, watchSeconds: [60, 60] });
  w.onChange((type, o) => changes.push(`${type} ${o.metadata.name}`));
  t.after(() => w.stop());
  await w.start();
  await until('the relist', () => changes.includes('delete b'), 3000);
  assert.deepEqual(changes, ['upsert a', 'upsert b', 'delete b']);
  assert.equal(w.restarts, 0);
});
