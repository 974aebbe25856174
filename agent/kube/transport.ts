// Requests to the apiserver over one pooled, kept-alive connection set (node:https; Node's fetch
// would load undici, ~6 MiB more on every node). A bearer token read from a file is read again
// when it is a minute old or the apiserver refuses it, since the kubelet rotates projected tokens.
import type { Agent as HttpAgent, IncomingMessage } from 'node:http';
import { readFileSync } from 'node:fs';
import type { ClusterAccess } from './access.ts';

// Not `import … from 'node:http'`: an ES import of node:http reads every export, and its lazy
// WebSocket/EventSource exports load Node's bundled undici (~6 MiB resident) — see runtime/http.ts.
const http = process.getBuiltinModule('node:http');
const https = process.getBuiltinModule('node:https');

const TOKEN_REREAD_MS = 60_000;
const REQUEST_TIMEOUT_MS = 30_000;

/** A refusal from the apiserver: its HTTP code and the message of its Status object. */
export class KubeApiError extends Error {
  readonly code: number;
  readonly reason?: string;

  constructor(code: number, message: string, reason?: string) {
    super(message);
    this.code = code;
    this.reason = reason;
  }
}

export interface RequestOptions {
  body?: unknown;
  contentType?: string;
  signal?: AbortSignal;
}

export class KubeTransport {
  private readonly access: ClusterAccess;
  private readonly agent: HttpAgent;
  private readonly secure: boolean;
  private token?: { value: string; readAt: number };

  constructor(access: ClusterAccess) {
    this.access = access;
    this.secure = access.server.startsWith('https:');
    const tls = { ca: access.ca, cert: access.cert, key: access.key, rejectUnauthorized: !access.insecureSkipTLSVerify, servername: access.tlsServerName };
    this.agent = this.secure ? new https.Agent({ keepAlive: true, ...tls }) : new http.Agent({ keepAlive: true });
  }

  /** A JSON request; resolves with the parsed body of a 2xx answer, throws KubeApiError otherwise. */
  async request<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    const res = await this.send(method, path, opts);
    const text = await readBody(res);
    if (res.statusCode! >= 300) throw apiError(res.statusCode!, text);
    return JSON.parse(text) as T;
  }

  /** A streaming GET (a watch): the response once its status is 2xx; the caller reads and ends it. */
  async stream(path: string, signal: AbortSignal): Promise<IncomingMessage> {
    const res = await this.send('GET', path, { signal }, 0);
    if (res.statusCode! >= 300) throw apiError(res.statusCode!, await readBody(res));
    return res;
  }

  close(): void {
    this.agent.destroy();
  }

  private async send(method: string, path: string, opts: RequestOptions, timeoutMs = REQUEST_TIMEOUT_MS): Promise<IncomingMessage> {
    const first = await this.once(method, path, opts, timeoutMs, false);
    if (first.statusCode !== 401 || !this.access.tokenFile) return first;
    first.resume();
    return this.once(method, path, opts, timeoutMs, true);
  }

  private once(method: string, path: string, opts: RequestOptions, timeoutMs: number, rereadToken: boolean): Promise<IncomingMessage> {
    const headers: Record<string, string> = { accept: 'application/json' };
    const bearer = this.bearer(rereadToken);
    if (bearer) headers.authorization = `Bearer ${bearer}`;
    const payload = opts.body === undefined ? undefined : JSON.stringify(opts.body);
    if (payload !== undefined) headers['content-type'] = opts.contentType ?? 'application/json';
    const url = new URL(this.access.server + path);
    const send = this.secure ? https.request : http.request;
    return new Promise((resolve, reject) => {
      const req = send(url, { method, headers, agent: this.agent, signal: opts.signal }, resolve);
      req.on('error', reject);
      if (timeoutMs) req.setTimeout(timeoutMs, () => req.destroy(new Error(`${method} ${path}: no answer in ${timeoutMs / 1000} s`)));
      req.end(payload);
    });
  }

  private bearer(reread: boolean): string | undefined {
    const file = this.access.tokenFile;
    if (!file) return this.access.token;
    const now = Date.now();
    if (reread || !this.token || now - this.token.readAt >= TOKEN_REREAD_MS) {
      try {
        this.token = { value: readFileSync(file, 'utf8').trim(), readAt: now };
      } catch (e) {
        // The kubelet swaps the file by renaming; keep the last token if a read falls in between.
        if (!this.token) throw new Error(`cannot read the token file ${file}: ${(e as Error).message}`);
      }
    }
    return this.token!.value;
  }
}

function readBody(res: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    res.on('error', reject);
  });
}

function apiError(code: number, text: string): KubeApiError {
  try {
    const status = JSON.parse(text) as { message?: string; reason?: string };
    return new KubeApiError(code, status.message ?? `HTTP ${code}`, status.reason);
  } catch {
    return new KubeApiError(code, `HTTP ${code}: ${text.slice(0, 200)}`);
  }
}
