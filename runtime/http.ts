// A small HTTP server for health, readiness and metrics endpoints.
import { createServer, type Server } from 'node:http';

/** A handler; `url` is the request's, parsed (query parameters included). */
export type Route = (url?: URL) => Promise<{ status: number; type?: string; body: string }> | { status: number; type?: string; body: string };

export async function serveHttp(port: number, routes: Record<string, Route>, host = '0.0.0.0'): Promise<Server> {
  const server = createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const route = routes[url.pathname];
    if (!route) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    try {
      const r = await route(url);
      res.writeHead(r.status, { 'content-type': r.type ?? 'text/plain' }).end(r.body);
    } catch (e) {
      res.writeHead(500, { 'content-type': 'text/plain' }).end(`${(e as Error).message}\n`);
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}
