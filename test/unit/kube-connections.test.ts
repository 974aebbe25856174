import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { reuseConnections } from '../../runtime/kube-connections.ts';

async function countingApiserver() {
  let connections = 0;
  const server = createServer((_req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ apiVersion: 'v1', kind: 'NamespaceList', metadata: {}, items: [] }));
  });
  server.on('connection', () => connections++);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, skipTLSVerify: true }],
    users: [{ name: 'u', token: 't' }], contexts: [{ name: 'x', cluster: 'c', user: 'u' }], currentContext: 'x',
  });
  return { kc, connections: () => connections, close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }) };
}

test('API requests from a pooled KubeConfig share kept-alive connections', async (t) => {
  const api = await countingApiserver();
  t.after(api.close);
  const core = reuseConnections(api.kc).makeApiClient(CoreV1Api);
  for (let i = 0; i < 10; i++) await core.listNamespace();
  // undici may open a second one when a request is sent before the previous socket is back in the pool.
  assert.ok(api.connections() <= 2, `${api.connections()} connections for 10 requests`);
  assert.equal(reuseConnections(api.kc), api.kc, 'idempotent');
});

test('without it, client-node opens a connection per request (the upstream behaviour this works around)', async (t) => {
  const api = await countingApiserver();
  t.after(api.close);
  const core = api.kc.makeApiClient(CoreV1Api);
  for (let i = 0; i < 3; i++) await core.listNamespace();
  // If this starts failing, client-node reuses connections by itself and kube-connections.ts can go.
  assert.equal(api.connections(), 3);
});
