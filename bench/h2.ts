// A small HTTP/2 client for the apiserver (admin client certificate from a KubeConfig): the
// watch-cost bench writes pods and holds thousands of watches with it, without client-node's
// per-request serialisation cost. Loopback only: the server comes from the control plane's kubeconfig.
import http2, { type ClientHttp2Session } from 'node:http2';
import type { RequestOptions } from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';

export interface Endpoint {
  server: string;
  tls: { ca?: RequestOptions['ca']; cert?: RequestOptions['cert']; key?: RequestOptions['key'] };
}

export interface Response {
  status: number;
  body: string;
}

export async function endpointOf(kc: KubeConfig): Promise<Endpoint> {
  const server = kc.getCurrentCluster()?.server;
  if (!server) throw new Error('KubeConfig has no current cluster');
  const opts: RequestOptions = {};
  await kc.applyToHTTPSOptions(opts);
  return { server, tls: { ca: opts.ca, cert: opts.cert, key: opts.key } };
}

/** Go's HTTP/2 transport defaults (client-go): 4 MiB per stream, 1 GiB per connection. */
const STREAM_WINDOW = 4 << 20;
const CONNECTION_WINDOW = 1 << 30;

/** One HTTP/2 connection, resolved once the TLS handshake and settings exchange are done. */
export function connect(ep: Endpoint, timeoutMs = 30_000): Promise<ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(ep.server, {
      ...ep.tls,
      settings: { initialWindowSize: STREAM_WINDOW, enablePush: false },
      maxSessionMemory: 1024,
    });
    const timer = setTimeout(() => {
      session.destroy();
      reject(new Error(`HTTP/2 connect to ${ep.server} timed out`));
    }, timeoutMs);
    session.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    session.once('connect', () => {
      clearTimeout(timer);
      session.setLocalWindowSize(CONNECTION_WINDOW);
      session.removeAllListeners('error');
      session.on('error', () => {}); // a dying session also fails its streams, which report it
      resolve(session);
    });
  });
}

/** Requests spread over a few connections; each resolves with the status and the whole body. */
export class ApiClient {
  private next = 0;
  private readonly sessions: ClientHttp2Session[];
  private readonly timeoutMs: number;

  private constructor(sessions: ClientHttp2Session[], timeoutMs: number) {
    this.sessions = sessions;
    this.timeoutMs = timeoutMs;
  }

  static async open(ep: Endpoint, connections = 4, timeoutMs = 60_000): Promise<ApiClient> {
    return new ApiClient(await Promise.all(Array.from({ length: connections }, () => connect(ep))), timeoutMs);
  }

  request(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<Response> {
    const session = this.sessions[this.next++ % this.sessions.length];
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const headers: http2.OutgoingHttpHeaders = { ':method': method, ':path': path, accept: 'application/json' };
      if (payload !== undefined) headers['content-type'] = contentType;
      const stream = session.request(headers, { endStream: payload === undefined });
      let status = 0;
      const chunks: Buffer[] = [];
      stream.setTimeout(this.timeoutMs, () => stream.close(http2.constants.NGHTTP2_CANCEL));
      stream.on('response', (h) => (status = Number(h[':status'])));
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => resolve({ status, body: Buffer.concat(chunks).toString('utf8') }));
      stream.on('error', reject);
      stream.on('close', () => {
        if (!status) reject(new Error(`${method} ${path}: stream closed without a response`));
      });
      if (payload !== undefined) stream.end(payload);
    });
  }

  /** Like request, but a status outside 2xx (and not in `allowed`) is an error. */
  async ok(method: string, path: string, body?: unknown, contentType?: string, allowed: number[] = []): Promise<Response> {
    const res = await this.request(method, path, body, contentType);
    if ((res.status < 200 || res.status > 299) && !allowed.includes(res.status)) {
      throw new Error(`${method} ${path}: ${res.status} ${res.body.slice(0, 300)}`);
    }
    return res;
  }

  close(): void {
    for (const s of this.sessions) s.destroy();
  }
}
