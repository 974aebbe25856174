// A scripted apiserver over plain HTTP for the agent's client: each request is recorded and answered
// by the test's handler, which may hold a watch open and write events into it.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Seen { method: string; path: string; query: URLSearchParams; authorization?: string; contentType?: string; body: string }
export type Handler = (req: Seen, res: ServerResponse) => void;

export interface FakeApiserver {
  url: string;
  requests: Seen[];
  connections(): number;
  /** Open watch responses, oldest first. */
  watches: ServerResponse[];
  handle(handler: Handler): void;
  close(): Promise<void>;
}

export async function fakeApiserver(): Promise<FakeApiserver> {
  let handler: Handler = (_req, res) => json(res, 404, { kind: 'Status', code: 404, message: 'no handler' });
  let connections = 0;
  const requests: Seen[] = [];
  const watches: ServerResponse[] = [];
  const server = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url!, 'http://x');
      const seen: Seen = { method: req.method!, path: url.pathname, query: url.searchParams, authorization: req.headers.authorization, contentType: req.headers['content-type'], body: Buffer.concat(chunks).toString() };
      requests.push(seen);
      if (url.searchParams.get('watch') === 'true') {
        watches.push(res);
        res.on('close', () => watches.splice(watches.indexOf(res), 1));
      }
      handler(seen, res);
    });
  });
  server.on('connection', () => connections++);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    watches,
    connections: () => connections,
    handle: (h) => (handler = h),
    close: () => new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}

export function json(res: ServerResponse, code: number, body: unknown): void {
  res.writeHead(code, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

/** Starts a watch response; write events with `event`. */
export function openWatch(res: ServerResponse): void {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.flushHeaders();
}

export function event(res: ServerResponse, type: string, object: unknown): void {
  res.write(`${JSON.stringify({ type, object })}\n`);
}
