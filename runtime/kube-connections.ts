// @kubernetes/client-node 2.0.1 (the latest) builds a new undici Agent for every API request, so
// every request opens a new TLS connection and the previous one idles until its keep-alive runs out.
// Against the sandbox's apiserver that is 8–12 ms a request instead of ~1.3 ms over a kept-alive
// connection; on a cluster it is extra round trips per status write and a handshake for the
// apiserver to pay for every request of every agent. This keeps one dispatcher per distinct set of
// connection options (CA, client certificate, proxy), so requests share pooled connections and a
// rotated certificate still gets a dispatcher of its own.
import { createHash } from 'node:crypto';
import type { KubeConfig } from '@kubernetes/client-node';

type Context = Parameters<KubeConfig['applySecurityAuthentication']>[0];
type Dispatcher = Parameters<Context['setDispatcher']>[0];

const pooled = new WeakSet<KubeConfig>();

/** Makes API clients made from `kc` reuse connections; returns `kc` (idempotent). */
export function reuseConnections(kc: KubeConfig): KubeConfig {
  if (pooled.has(kc)) return kc;
  pooled.add(kc);
  const dispatchers = new Map<string, Dispatcher>();
  // applySecurityAuthentication computes the options and builds the dispatcher synchronously,
  // with no await in between, so the key recorded here belongs to the dispatcher set next.
  let key: string | undefined;
  const options = kc.createDispatcherOptions.bind(kc);
  kc.createDispatcherOptions = (cluster, agentOptions) => {
    const o = options(cluster, agentOptions);
    key = createHash('sha256').update(JSON.stringify(o)).digest('hex');
    return o;
  };
  const authenticate = kc.applySecurityAuthentication.bind(kc);
  kc.applySecurityAuthentication = async (context: Context) => {
    const set = context.setDispatcher.bind(context);
    context.setDispatcher = (fresh: Dispatcher) => {
      const k = key;
      key = undefined;
      if (k === undefined) return set(fresh);
      const cached = dispatchers.get(k);
      if (cached) {
        void fresh.close(); // never used: no connection to close, only its bookkeeping
        return set(cached);
      }
      dispatchers.set(k, fresh);
      return set(fresh);
    };
    await authenticate(context);
  };
  return kc;
}
