// Where the agent's apiserver is and how it proves who it is, from a kubeconfig or the pod's
// ServiceAccount. The agent's own client (decisions.md 15) reads only what a node agent is given:
// a server, its CA, and a token, token file or client certificate. Credential plugins (exec,
// auth-provider) are refused by name rather than silently ignored.
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import * as yaml from 'js-yaml';

export interface ClusterAccess {
  /** e.g. https://10.0.0.1:443, without a trailing slash. */
  server: string;
  ca?: Buffer;
  insecureSkipTLSVerify?: boolean;
  tlsServerName?: string;
  cert?: Buffer;
  key?: Buffer;
  token?: string;
  /** Read again as it rotates (projected ServiceAccount tokens expire after an hour). */
  tokenFile?: string;
  /** Where this came from, for error messages. */
  source: string;
}

const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** An explicit path, else $KUBECONFIG (its first existing file), ~/.kube/config, then in-cluster. */
export function loadClusterAccess(path?: string, env: NodeJS.ProcessEnv = process.env): ClusterAccess {
  if (path) return fromKubeconfigFile(path);
  for (const candidate of (env.KUBECONFIG ?? '').split(':').filter(Boolean)) if (existsSync(candidate)) return fromKubeconfigFile(candidate);
  const home = join(env.HOME ?? homedir(), '.kube', 'config');
  if (existsSync(home)) return fromKubeconfigFile(home);
  if (env.KUBERNETES_SERVICE_HOST) return inCluster(env);
  throw new Error('no cluster to talk to: pass --kubeconfig, set $KUBECONFIG, or run in a pod (KUBERNETES_SERVICE_HOST)');
}

export function inCluster(env: NodeJS.ProcessEnv = process.env, dir = SERVICE_ACCOUNT_DIR): ClusterAccess {
  const host = env.KUBERNETES_SERVICE_HOST;
  if (!host) throw new Error('not in a pod: KUBERNETES_SERVICE_HOST is not set');
  const port = env.KUBERNETES_SERVICE_PORT ?? '443';
  return {
    server: `https://${host.includes(':') ? `[${host}]` : host}:${port}`,
    ca: readFileSync(join(dir, 'ca.crt')),
    tokenFile: join(dir, 'token'),
    source: 'in-cluster ServiceAccount',
  };
}

type Named<T> = { name: string } & T;
interface KubeconfigFile {
  'current-context'?: string;
  clusters?: Array<Named<{ cluster?: Record<string, unknown> }>>;
  users?: Array<Named<{ user?: Record<string, unknown> }>>;
  contexts?: Array<Named<{ context?: { cluster?: string; user?: string } }>>;
}

export function fromKubeconfigFile(path: string): ClusterAccess {
  return fromKubeconfig(readFileSync(path, 'utf8'), path);
}

/** `source` is the file the text came from: relative paths in it are relative to its directory. */
export function fromKubeconfig(text: string, source: string): ClusterAccess {
  const config = (yaml.load(text) ?? {}) as KubeconfigFile;
  const fail = (why: string) => new Error(`kubeconfig ${source}: ${why}`);
  const contextName = config['current-context'];
  if (!contextName) throw fail('no current-context');
  const context = config.contexts?.find((c) => c.name === contextName)?.context;
  if (!context) throw fail(`context "${contextName}" is not defined`);
  const cluster = config.clusters?.find((c) => c.name === context.cluster)?.cluster;
  if (!cluster) throw fail(`cluster "${context.cluster}" is not defined`);
  const user = context.user === undefined ? {} : config.users?.find((u) => u.name === context.user)?.user;
  if (!user) throw fail(`user "${context.user}" is not defined`);
  for (const plugin of ['exec', 'auth-provider']) if (user[plugin]) throw fail(`user "${context.user}" uses an ${plugin} credential plugin, which the agent does not run; give it a token, token file or client certificate`);
  if (cluster['proxy-url']) throw fail('proxy-url is not supported by the agent');
  const server = str(cluster.server);
  if (!server) throw fail(`cluster "${context.cluster}" has no server`);
  const file = (section: Record<string, unknown>, key: string): Buffer | undefined => {
    const data = str(section[`${key}-data`]);
    if (data) return Buffer.from(data, 'base64');
    const p = str(section[key]);
    return p ? readFileSync(resolve(source, p)) : undefined;
  };
  const tokenFile = str(user.tokenFile);
  return {
    server: server.replace(/\/+$/, ''),
    ca: file(cluster, 'certificate-authority'),
    insecureSkipTLSVerify: cluster['insecure-skip-tls-verify'] === true,
    tlsServerName: str(cluster['tls-server-name']),
    cert: file(user, 'client-certificate'),
    key: file(user, 'client-key'),
    token: str(user.token),
    tokenFile: tokenFile ? resolve(source, tokenFile) : undefined,
    source,
  };
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

function resolve(source: string, path: string): string {
  return isAbsolute(path) ? path : join(dirname(source), path);
}
