// A small HTTP server for health, readiness and metrics endpoints.
import type { Server } from 'node:http';

// process.getBuiltinModule, not `import { createServer } from 'node:http'`: an ES import of a
// built-in reads all of its exports, and node:http's WebSocket, CloseEvent and MessageEvent getters
// then load Node's bundled undici, ~6 MiB resident in a process that never uses it (the agent).
const { createServer } = process.getBuiltinModule('node:http');

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
