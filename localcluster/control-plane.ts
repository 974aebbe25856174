// A real Kubernetes control plane for integration tests and the sandbox: etcd and kube-apiserver,
// built from pinned sources by localcluster/build.sh, listening on loopback ports only. There is no
// kubelet, scheduler or controller-manager: localcluster/kubelet.ts plays them where a test needs it.
//
//   const cp = await startControlPlane();
//   try { ... cp.kubeConfig() ... } finally { await cp.stop(); }
//
// Run directly (`node localcluster/control-plane.ts`) it starts one, prints the environment that
// integration tests read (FENCER_TEST_KUBECONFIG, FENCER_TEST_BIN_DIR) and runs until interrupted.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, appendFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import https from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import * as yaml from 'js-yaml';
import { ApiException, CoreV1Api, CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';
import { ASET_PLURAL } from '../crds/address-set.ts';
import { CPS_GROUP, CPS_PLURAL, CPS_VERSION } from '../crds/types.ts';

const repoRoot = fileURLToPath(new URL('../', import.meta.url));
const buildScript = join(repoRoot, 'localcluster/build.sh');
/** The CRDs Fencer installs, in apply order. */
export const crdFiles: readonly string[] = [join(repoRoot, 'crds/compiledpolicyset.yaml'), join(repoRoot, 'crds/addressset.yaml')];
const crdNames: readonly string[] = [`${CPS_PLURAL}.${CPS_GROUP}`, `${ASET_PLURAL}.${CPS_GROUP}`];

export const SERVICE_CLUSTER_IP_RANGE = '10.96.0.0/16';
export const SERVICE_ACCOUNT_ISSUER = 'https://kubernetes.default.svc.cluster.local';

export interface KubectlResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

/** What a test needs from a running control plane, whether it started it or attached to it. */
export interface Cluster {
  /** Admin kubeconfig (client certificate in group system:masters), self-contained. */
  readonly kubeconfigPath: string;
  /** https://127.0.0.1:<port> */
  readonly server: string;
  /** Where etcd, kube-apiserver, kubectl and helm live. */
  readonly binDir: string;
  /** A fresh admin KubeConfig loaded from kubeconfigPath. */
  kubeConfig(): KubeConfig;
  /** Runs the pinned kubectl against this cluster as admin; never throws on a non-zero exit. */
  kubectl(args: string[], opts?: { input?: string }): Promise<KubectlResult>;
  /** Applies Fencer's CRDs and waits until they are Established and served. Idempotent. */
  installCrds(): Promise<void>;
  /** Creates the ServiceAccount when missing and returns a token for it (TokenRequest API, 24 h). */
  tokenFor(namespace: string, serviceAccount: string): Promise<string>;
  /** A KubeConfig authenticating as that ServiceAccount, to test code under its own RBAC. */
  kubeConfigFor(namespace: string, serviceAccount: string): Promise<KubeConfig>;
}

export interface ControlPlane extends Cluster {
  /** Temp directory holding certificates, etcd data, the kubeconfig and logs. */
  readonly workDir: string;
  /** etcd.log and kube-apiserver.log (stdout and stderr of each). */
  readonly logDir: string;
  readonly etcdUrl: string;
  /** Milliseconds from the call to a ready apiserver. */
  readonly startupMs: number;
  /** Stops both processes (SIGTERM, then SIGKILL) and removes workDir unless FENCER_KEEP_CLUSTER=1. */
  stop(): Promise<void>;
  /** An outage: stops kube-apiserver, then etcd (SIGTERM, then SIGKILL), keeping workDir and the ports. */
  stopServers(): Promise<void>;
  /** Starts etcd and kube-apiserver again on the same ports and etcd data; resolves when ready. */
  startServers(): Promise<void>;
}

export interface StartOptions {
  /** Parent of the temp directory (default: the OS temp dir). */
  workDir?: string;
  /** Use these binaries instead of running build.sh. */
  binDir?: string;
  /** How long to wait for readiness (default 180 s). */
  timeoutMs?: number;
}

// ---------------------------------------------------------------------------------------------
// Binaries

/** Runs localcluster/build.sh (cached: ~0.1 s) and returns the binaries' directory. */
export async function buildBinaries(): Promise<string> {
  const child = spawn('bash', [buildScript], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderrTail = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  // Pass on a cold build's progress; "<name>: cached" lines are noise.
  let pending = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    pending += chunk;
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) {
      stderrTail = (stderrTail + line + '\n').slice(-4000);
      if (!line.endsWith(': cached')) process.stderr.write(line + '\n');
    }
  });
  const code = await new Promise<number>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (c) => resolve(c ?? 1));
  });
  if (pending) process.stderr.write(pending + '\n');
  const dir = stdout.trim().split('\n').pop() ?? '';
  if (code !== 0 || !dir || !existsSync(join(dir, 'kube-apiserver'))) {
    throw new Error(`localcluster/build.sh failed (exit ${code}):\n${stderrTail}${pending}`);
  }
  return dir;
}

function buildBinariesSync(): string {
  const out = execFileSync('bash', [buildScript], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return out.trim().split('\n').pop() ?? '';
}

// ---------------------------------------------------------------------------------------------
// Attaching to a cluster (by kubeconfig): what integration tests use

async function runKubectl(binDir: string, kubeconfigPath: string, args: string[], opts: { input?: string } = {}): Promise<KubectlResult> {
  const result = await execa(join(binDir, 'kubectl'), ['--kubeconfig', kubeconfigPath, ...args], {
    reject: false,
    // Discovery cache next to the kubeconfig, never in ~/.kube, so clusters never share one.
    env: { KUBECACHEDIR: join(dirname(kubeconfigPath), 'kubectl-cache') },
    ...(opts.input === undefined ? {} : { input: opts.input }),
  });
  return { stdout: result.stdout, stderr: result.stderr, exitCode: result.exitCode ?? 1 };
}

async function installCrdsWith(kc: KubeConfig, kubectl: Cluster['kubectl']): Promise<void> {
  for (const file of crdFiles) {
    const applied = await kubectl(['apply', '-f', file]);
    if (applied.exitCode !== 0) throw new Error(`kubectl apply -f ${file} failed: ${applied.stderr}`);
  }
  // Right after creation the CRD may have no status.conditions yet, which `kubectl wait` reports as an error.
  let waited = await kubectl(['wait', '--for=condition=Established', '--timeout=60s', ...crdNames.map((n) => `crd/${n}`)]);
  for (let i = 0; i < 20 && waited.exitCode !== 0 && /accessor error/.test(waited.stderr); i++) {
    await new Promise((r) => setTimeout(r, 100));
    waited = await kubectl(['wait', '--for=condition=Established', '--timeout=60s', ...crdNames.map((n) => `crd/${n}`)]);
  }
  if (waited.exitCode !== 0) throw new Error(`CRDs not Established: ${waited.stderr}`);
  // Established can precede the resource being served for a moment: wait for a list to work.
  const custom = kc.makeApiClient(CustomObjectsApi);
  await waitUntil('the CompiledPolicySet and AddressSet resources to be served', 30_000, async () => {
    try {
      for (const plural of [CPS_PLURAL, ASET_PLURAL]) await custom.listClusterCustomObject({ group: CPS_GROUP, version: CPS_VERSION, plural, limit: 1 });
      return true;
    } catch (e) {
      if (e instanceof ApiException && e.code === 404) return false;
      throw e;
    }
  });
}

/** Creates the ServiceAccount if missing and returns a token for it through the TokenRequest API. */
export async function tokenFor(kc: KubeConfig, namespace: string, serviceAccount: string, expirationSeconds = 86_400): Promise<string> {
  const core = kc.makeApiClient(CoreV1Api);
  try {
    await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name: serviceAccount } } });
  } catch (e) {
    if (!(e instanceof ApiException && e.code === 409)) throw e;
  }
  const request = await core.createNamespacedServiceAccountToken({
    namespace,
    name: serviceAccount,
    body: { spec: { audiences: [], expirationSeconds } },
  });
  const token = request.status?.token;
  if (!token) throw new Error(`TokenRequest for ${namespace}/${serviceAccount} returned no token`);
  return token;
}

/** A KubeConfig for the same cluster as `admin`, authenticating with `token`. */
export function tokenKubeConfig(admin: KubeConfig, token: string, user = 'token-user'): KubeConfig {
  const cluster = admin.getCurrentCluster();
  if (!cluster) throw new Error('admin KubeConfig has no current cluster');
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: cluster.name, server: cluster.server, caData: cluster.caData, caFile: cluster.caFile, skipTLSVerify: false }],
    users: [{ name: user, token }],
    contexts: [{ name: user, cluster: cluster.name, user }],
    currentContext: user,
  });
  return kc;
}

/** A KubeConfig for the same cluster as `admin`, authenticating with a ServiceAccount token. */
export async function kubeConfigFor(admin: KubeConfig, namespace: string, serviceAccount: string): Promise<KubeConfig> {
  return tokenKubeConfig(admin, await tokenFor(admin, namespace, serviceAccount), `system:serviceaccount:${namespace}:${serviceAccount}`);
}

/** A Cluster for an already running control plane, known by its admin kubeconfig. */
export function attachCluster(kubeconfigPath: string, binDir?: string): Cluster {
  const bin = binDir || buildBinariesSync();
  const load = (): KubeConfig => {
    const kc = new KubeConfig();
    kc.loadFromFile(kubeconfigPath);
    return kc;
  };
  const server = load().getCurrentCluster()?.server;
  if (!server) throw new Error(`${kubeconfigPath} names no current cluster`);
  const cluster: Cluster = {
    kubeconfigPath,
    server,
    binDir: bin,
    kubeConfig: load,
    kubectl: (args, opts) => runKubectl(bin, kubeconfigPath, args, opts),
    installCrds: () => installCrdsWith(load(), cluster.kubectl),
    tokenFor: (namespace, serviceAccount) => tokenFor(load(), namespace, serviceAccount),
    kubeConfigFor: (namespace, serviceAccount) => kubeConfigFor(load(), namespace, serviceAccount),
  };
  return cluster;
}

// ---------------------------------------------------------------------------------------------
// Starting one

interface Proc {
  name: string;
  child: ChildProcess;
  pid: number;
  exited: boolean;
  exit: Promise<void>;
}

interface Running {
  workDir: string;
  keep: boolean;
  procs: Proc[];
  watchdog?: ChildProcess;
  stop(): Promise<void>;
}

const live = new Set<Running>();
let signalling = false;

function onExit(): void {
  for (const cp of live) killNow(cp);
}

function onSignal(signal: NodeJS.Signals): void {
  const code = signal === 'SIGINT' ? 130 : 143;
  if (signalling) {
    onExit();
    process.exit(code);
  }
  signalling = true;
  void Promise.allSettled([...live].map((cp) => cp.stop())).then(() => process.exit(code));
}

function track(cp: Running): void {
  if (live.size === 0) {
    process.on('exit', onExit);
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  }
  live.add(cp);
}

function untrack(cp: Running): void {
  if (!live.delete(cp) || live.size > 0) return;
  process.off('exit', onExit);
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

/** Synchronous last resort for process 'exit': SIGKILL everything and remove the directory. */
function killNow(cp: Running): void {
  for (const proc of cp.procs) signalGroup(proc.pid, 'SIGKILL');
  // The watchdog stays: it sees this process gone within a second and removes what is left.
  if (!cp.keep) {
    try {
      rmSync(cp.workDir, { recursive: true, force: true, maxRetries: 3 });
    } catch {
      // the watchdog retries
    }
  }
}

async function terminate(proc: Proc, graceMs: number): Promise<void> {
  proc.child.ref(); // keep the event loop alive until the exit is seen; the timers below do not
  if (!proc.exited) {
    signalGroup(proc.pid, 'SIGTERM');
    await Promise.race([proc.exit, sleep(graceMs, undefined, { ref: false })]);
  }
  // Also when the leader has exited: nothing of its group may stay.
  signalGroup(proc.pid, 'SIGKILL');
  await Promise.race([proc.exit, sleep(5_000, undefined, { ref: false })]);
}

// Kills the control plane's process groups and removes its directory when the Node process that
// started it disappears without cleaning up (SIGKILL, a crash the 'exit' handler does not see).
const WATCHDOG = `
parent=$1 dir=$2 keep=$3
while kill -0 "$parent" 2>/dev/null; do sleep 1; done
groups=$(cat "$dir/pgids" 2>/dev/null || true)
for g in $groups; do kill -TERM -- "-$g" 2>/dev/null; done
[ -z "$groups" ] || sleep 3
for g in $groups; do kill -KILL -- "-$g" 2>/dev/null; done
[ "$keep" = 1 ] || rm -rf "$dir"
`;

function launch(cp: Running, name: string, bin: string, args: string[], logDir: string): Proc {
  const out = openSync(join(logDir, `${name}.log`), 'a');
  let child: ChildProcess;
  try {
    child = spawn(bin, args, { detached: true, stdio: ['ignore', out, out] });
  } finally {
    closeSync(out);
  }
  if (child.pid === undefined) throw new Error(`could not start ${bin}`);
  child.unref();
  appendFileSync(join(cp.workDir, 'pgids'), `${child.pid}\n`);
  const proc: Proc = { name, child, pid: child.pid, exited: false, exit: Promise.resolve() };
  proc.exit = new Promise<void>((resolve) => {
    child.once('exit', () => {
      proc.exited = true;
      resolve();
    });
  });
  child.on('error', () => {});
  cp.procs.push(proc);
  return proc;
}

async function freePorts(count: number): Promise<number[]> {
  const servers: Server[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const server = createServer();
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, '127.0.0.1', resolve);
      });
      servers.push(server);
    }
    return servers.map((s) => (s.address() as AddressInfo).port);
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }
}

interface Tls {
  ca: string;
  cert: string;
  key: string;
}

function httpsGet(url: string, tls: Tls): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { ...tls, agent: false, timeout: 3_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

async function waitUntil(what: string, timeoutMs: number, check: () => Promise<boolean>, interval = 100): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(interval);
  }
}

function tail(file: string, lines = 40): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

const OPENSSL_CNF = `
[req]
distinguished_name = dn
prompt = no
[dn]
CN = fencer
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign,digitalSignature
subjectKeyIdentifier = hash
[server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
[client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = clientAuth
`;

/** CA, apiserver serving certificate, admin client certificate (O=system:masters), SA signing key. */
async function generatePki(dir: string): Promise<void> {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'openssl.cnf'), OPENSSL_CNF);
  const openssl = (args: string[]) => execa('openssl', args, { cwd: dir });
  const ecKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-noenc'];
  await openssl(['req', '-x509', '-config', 'openssl.cnf', '-extensions', 'ca', ...ecKey, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '3650', '-subj', '/CN=fencer-test-ca']);
  const issue = async (name: string, subject: string, extensions: string) => {
    await openssl(['req', '-new', '-config', 'openssl.cnf', ...ecKey, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject]);
    await openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-set_serial', `0x${Date.now().toString(16)}${name.length}`, '-days', '3650', '-extfile', 'openssl.cnf', '-extensions', extensions, '-out', `${name}.crt`]);
  };
  await Promise.all([
    issue('apiserver', '/CN=kube-apiserver', 'server'),
    issue('admin', '/O=system:masters/CN=fencer-admin', 'client'),
    (async () => {
      await openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', 'sa.key']);
      await openssl(['pkey', '-in', 'sa.key', '-pubout', '-out', 'sa.pub']);
    })(),
  ]);
}

function writeKubeconfig(path: string, server: string, pki: string): void {
  const b64 = (file: string) => readFileSync(join(pki, file)).toString('base64');
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'fencer-test', cluster: { server, 'certificate-authority-data': b64('ca.crt') } }],
    users: [{ name: 'fencer-admin', user: { 'client-certificate-data': b64('admin.crt'), 'client-key-data': b64('admin.key') } }],
    contexts: [{ name: 'fencer-test', context: { cluster: 'fencer-test', user: 'fencer-admin' } }],
    'current-context': 'fencer-test',
  };
  writeFileSync(path, yaml.dump(config), { mode: 0o600 });
}

class StartFailure extends Error {
  portConflict = false;
}

async function startOnce(binDir: string, parent: string, timeoutMs: number, started: number): Promise<ControlPlane> {
  const workDir = mkdtempSync(join(parent, 'fencer-cp-'));
  const keep = process.env.FENCER_KEEP_CLUSTER === '1';
  const logDir = join(workDir, 'logs');
  const pki = join(workDir, 'pki');
  mkdirSync(logDir);

  let stopping: Promise<void> | undefined;
  const running: Running = {
    workDir,
    keep,
    procs: [],
    stop: () =>
      (stopping ??= (async () => {
        const [etcd, apiserver] = running.procs;
        if (apiserver) await terminate(apiserver, 10_000);
        if (etcd) await terminate(etcd, 10_000);
        if (running.watchdog?.pid !== undefined) signalGroup(running.watchdog.pid, 'SIGKILL');
        if (keep) process.stderr.write(`[control-plane] FENCER_KEEP_CLUSTER=1: kept ${workDir}\n`);
        else rmSync(workDir, { recursive: true, force: true, maxRetries: 3 });
        untrack(running);
      })()),
  };
  track(running);
  running.watchdog = spawn('bash', ['-c', WATCHDOG, 'fencer-cp-watchdog', String(process.pid), workDir, keep ? '1' : '0'], {
    detached: true,
    stdio: 'ignore',
  });
  running.watchdog.unref();

  const fail = async (message: string): Promise<never> => {
    const logs = running.procs.map((p) => `--- ${p.name}.log (last lines) ---\n${tail(join(logDir, `${p.name}.log`))}`).join('\n');
    await running.stop();
    const failure = new StartFailure(`control plane: ${message}\n${logs}`);
    failure.portConflict = /address already in use/.test(logs);
    throw failure;
  };

  try {
    await generatePki(pki);
    const [etcdClient, etcdPeer, securePort] = await freePorts(3);
    const etcdUrl = `http://127.0.0.1:${etcdClient}`;
    const peerUrl = `http://127.0.0.1:${etcdPeer}`;
    const etcdArgs = [
      '--name=fencer',
      `--data-dir=${join(workDir, 'etcd')}`,
      `--listen-client-urls=${etcdUrl}`,
      `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=${peerUrl}`,
      `--initial-advertise-peer-urls=${peerUrl}`,
      `--initial-cluster=fencer=${peerUrl}`,
      '--initial-cluster-state=new',
      '--unsafe-no-fsync', // throwaway data: durability buys nothing, fsync costs seconds
      '--log-level=warn',
    ];
    const server = `https://127.0.0.1:${securePort}`;
    const apiserverArgs = [
      `--etcd-servers=${etcdUrl}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${securePort}`,
      `--cert-dir=${pki}`,
      `--tls-cert-file=${join(pki, 'apiserver.crt')}`,
      `--tls-private-key-file=${join(pki, 'apiserver.key')}`,
      `--client-ca-file=${join(pki, 'ca.crt')}`,
      '--authorization-mode=RBAC',
      `--service-account-issuer=${SERVICE_ACCOUNT_ISSUER}`,
      `--service-account-key-file=${join(pki, 'sa.pub')}`,
      `--service-account-signing-key-file=${join(pki, 'sa.key')}`,
      `--service-cluster-ip-range=${SERVICE_CLUSTER_IP_RANGE}`,
      // No controller-manager creates the "default" ServiceAccount of a namespace, which this admission
      // plugin would require of every pod; no kubelet would mount its token anyway.
      '--disable-admission-plugins=ServiceAccount',
      // The apiserver's address is loopback, which a Service's endpoints may not hold.
      '--endpoint-reconciler-type=none',
      '--allow-privileged=true',
      '--profiling=false',
    ];
    const tls: Tls = {
      ca: readFileSync(join(pki, 'ca.crt'), 'utf8'),
      cert: readFileSync(join(pki, 'admin.crt'), 'utf8'),
      key: readFileSync(join(pki, 'admin.key'), 'utf8'),
    };

    // Both processes, on the same ports and etcd data directory each time (startServers after stopServers).
    const startServers = async (): Promise<void> => {
      running.procs = [];
      const etcd = launch(running, 'etcd', join(binDir, 'etcd'), etcdArgs, logDir);
      await waitUntil('etcd /health', 30_000, async () => {
        if (etcd.exited) return fail('etcd exited during start-up');
        try {
          const res = await fetch(`${etcdUrl}/health`, { signal: AbortSignal.timeout(2_000) });
          return res.ok && ((await res.json()) as { health?: string }).health === 'true';
        } catch {
          return false;
        }
      }, 50);
      const apiserver = launch(running, 'kube-apiserver', join(binDir, 'kube-apiserver'), apiserverArgs, logDir);
      let lastReadyz = '';
      try {
        await waitUntil('kube-apiserver /readyz', timeoutMs, async () => {
          if (apiserver.exited) return fail('kube-apiserver exited during start-up');
          if (etcd.exited) return fail('etcd exited during start-up');
          try {
            const res = await httpsGet(`${server}/readyz?verbose`, tls);
            lastReadyz = res.body;
            return res.status === 200;
          } catch (e) {
            lastReadyz = String(e);
            return false;
          }
        });
        // The apiserver creates the default namespace itself, shortly after it reports ready.
        await waitUntil('namespace "default"', 30_000, async () => (await httpsGet(`${server}/api/v1/namespaces/default`, tls)).status === 200);
      } catch (e) {
        if (e instanceof Error && !(e instanceof StartFailure) && /timed out/.test(e.message)) {
          return await fail(`${e.message}\nlast /readyz: ${lastReadyz}`);
        }
        throw e;
      }
    };
    const stopServers = async (): Promise<void> => {
      const [etcd, apiserver] = running.procs;
      if (apiserver) await terminate(apiserver, 10_000);
      if (etcd) await terminate(etcd, 10_000);
    };
    await startServers();

    const kubeconfigPath = join(workDir, 'kubeconfig');
    writeKubeconfig(kubeconfigPath, server, pki);
    const attached = attachCluster(kubeconfigPath, binDir);
    return {
      ...attached,
      workDir,
      logDir,
      etcdUrl,
      startupMs: Date.now() - started,
      stop: running.stop,
      stopServers,
      startServers,
    };
  } catch (e) {
    await running.stop();
    throw e;
  }
}

/**
 * Starts etcd and kube-apiserver on free loopback ports and waits until the apiserver is ready.
 * Processes are killed on stop(), on process exit, SIGINT and SIGTERM, and by a watchdog if this
 * process dies without any of those.
 */
export async function startControlPlane(opts: StartOptions = {}): Promise<ControlPlane> {
  const started = Date.now();
  const binDir = opts.binDir ?? (await buildBinaries());
  const parent = opts.workDir ?? tmpdir();
  mkdirSync(parent, { recursive: true });
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(binDir, parent, opts.timeoutMs ?? 180_000, started);
    } catch (e) {
      // Free ports are picked, released, then bound by etcd/apiserver: another process can win the race.
      if (e instanceof StartFailure && e.portConflict && attempt < 3) continue;
      throw e;
    }
  }
}

if (import.meta.main) {
  const cp = await startControlPlane();
  process.stdout.write(
    [
      `# control plane ready in ${(cp.startupMs / 1000).toFixed(1)} s; logs in ${cp.logDir}; Ctrl-C stops it`,
      `export KUBECONFIG=${cp.kubeconfigPath}`,
      `export FENCER_TEST_KUBECONFIG=${cp.kubeconfigPath}`,
      `export FENCER_TEST_BIN_DIR=${cp.binDir}`,
      `export PATH=${cp.binDir}:$PATH`,
      '',
    ].join('\n'),
  );
  setInterval(() => {}, 1 << 30);
}
