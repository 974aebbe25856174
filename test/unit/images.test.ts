// Dockerfile.operator and Dockerfile.agent, checked statically (no Docker engine runs here): stages,
// the pinned base, production dependencies only, users, that every copied path exists and that the
// copied files alone run the entrypoint; and `npm run package`'s artefacts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as yaml from 'js-yaml';
import { CRD_FILES, ENTRY, RUNTIME_PATHS, importClosure, packageRelease, uncoveredImports } from '../../scripts/package.ts';
import { helm, render, repoRoot } from '../helpers/chart.ts';

interface Stage { name: string; from: string; lines: string[] }
interface Dockerfile { args: Map<string, string>; stages: Stage[] }

/** Instructions with continuation lines joined and comments dropped, split into stages. */
function parse(file: string): Dockerfile {
  const text = readFileSync(join(repoRoot, file), 'utf8').replace(/\\\n\s*/g, ' ');
  const args = new Map<string, string>();
  const stages: Stage[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const from = /^FROM\s+(\S+)(?:\s+AS\s+(\S+))?$/i.exec(line);
    if (from) stages.push({ name: from[2] ?? String(stages.length), from: from[1], lines: [] });
    else if (!stages.length && /^ARG\s/i.test(line)) {
      const [k, v] = line.slice(4).split('=');
      args.set(k.trim(), v?.trim() ?? '');
    } else stages.at(-1)?.lines.push(line);
  }
  return { args, stages };
}

const copies = (stage: Stage) => stage.lines.filter((l) => /^COPY\s/i.test(l) && !/--from=/.test(l)).flatMap((l) => l.split(/\s+/).slice(1, -1));
const entrypoint = (stage: Stage) => JSON.parse(stage.lines.filter((l) => l.startsWith('ENTRYPOINT')).at(-1)!.slice('ENTRYPOINT'.length)) as string[];
const user = (stage: Stage) => stage.lines.filter((l) => l.startsWith('USER')).at(-1)?.split(/\s+/)[1];

const images = [
  { file: 'Dockerfile.operator', command: 'operator', user: '65532:65532' },
  { file: 'Dockerfile.agent', command: 'agent', user: '0:0' },
];
const nodeVersion = (JSON.parse(readFileSync(join(repoRoot, 'package-lock.json'), 'utf8')) as { packages: Record<string, { version: string }> }).packages['node_modules/node'].version;

for (const image of images) {
  test(`${image.file}: a deps stage and a runtime stage on the pinned Node ${nodeVersion} base`, () => {
    assert.ok(existsSync(join(repoRoot, image.file)));
    const d = parse(image.file);
    assert.deepEqual(d.stages.map((s) => s.name), ['deps', 'runtime']);
    const base = d.args.get('NODE_IMAGE');
    assert.equal(base, `node:${nodeVersion}-bookworm-slim`, 'the Node the tests run on, by full version tag');
    for (const s of d.stages) assert.equal(s.from, '${NODE_IMAGE}');
    const deps = d.stages[0];
    assert.ok(deps.lines.some((l) => /^RUN npm ci --omit=dev\b/.test(l)), 'production dependencies only');
    assert.deepEqual(copies(deps), ['package.json', 'package-lock.json']);
    const runtime = d.stages[1];
    assert.ok(runtime.lines.includes('COPY --from=deps /app/node_modules ./node_modules'));
    assert.ok(runtime.lines.includes('WORKDIR /app'));
    assert.ok(!runtime.lines.some((l) => /npm (ci|install)/.test(l)), 'no npm install in the final image');
    assert.match(readFileSync(join(repoRoot, image.file), 'utf8'), /pin it by digest/, 'documents pinning the digest at release');
  });

  test(`${image.file}: runs as ${image.user}; ENTRYPOINT node ${ENTRY} ${image.command}`, () => {
    const runtime = parse(image.file).stages[1];
    assert.equal(user(runtime), image.user);
    assert.deepEqual(entrypoint(runtime), ['node', ENTRY, image.command]);
  });

  test(`${image.file}: copies exactly the runtime paths, each exists, and they hold everything ${ENTRY} imports`, () => {
    const copied = copies(parse(image.file).stages[1]);
    assert.deepEqual([...copied].sort(), [...RUNTIME_PATHS].sort());
    for (const p of copied) assert.ok(existsSync(join(repoRoot, p)), `${p} does not exist`);
    assert.deepEqual(uncoveredImports(copied), []);
  });
}

test('the agent image installs iptables (both backends), ipset and nft; the operator image no system packages', () => {
  const agent = parse('Dockerfile.agent').stages[1];
  const apt = agent.lines.find((l) => l.includes('apt-get install'));
  assert.match(apt ?? '', /--no-install-recommends iptables ipset nftables\b/);
  assert.match(apt ?? '', /rm -rf \/var\/lib\/apt\/lists/);
  assert.ok(!parse('Dockerfile.operator').stages[1].lines.some((l) => l.includes('apt-get')));
  // The root agent is not privileged: the DaemonSet grants it two capabilities, nothing more.
  const ds = render().find((o) => o.kind === 'DaemonSet') as unknown as { spec: { template: { spec: { containers: Array<{ securityContext: { privileged: boolean; capabilities: unknown } }> } } } };
  const sc = ds.spec.template.spec.containers[0].securityContext;
  assert.equal(sc.privileged, false);
  assert.deepEqual(sc.capabilities, { drop: ['ALL'], add: ['NET_ADMIN', 'NET_RAW'] });
});

for (const image of images) {
  test(`${image.file}: fills Node's compile cache under /app after copying the sources, so no process strips TypeScript at run time`, () => {
    const runtime = parse(image.file).stages[1];
    const env = runtime.lines.find((l) => /^ENV\s+NODE_COMPILE_CACHE=/.test(l));
    assert.equal(env, 'ENV NODE_COMPILE_CACHE=/app/.compile-cache');
    const warm = runtime.lines.indexOf('RUN node cli/main.ts --help > /dev/null');
    assert.ok(warm > runtime.lines.indexOf(env!), 'warmed with the variable set');
    assert.ok(warm > Math.max(...runtime.lines.map((l, i) => (/^COPY\s/.test(l) ? i : -1))), 'warmed after the last COPY');
    assert.ok(warm < runtime.lines.findIndex((l) => l.startsWith('USER')), 'warmed before dropping to the run-time user');
  });
}

test('a compile cache filled by `--help` serves every TypeScript file the agent and the operator load', () => {
  const cache = mkdtempSync(join(tmpdir(), 'fencer-compile-cache-'));
  try {
    const env = { ...process.env, NODE_COMPILE_CACHE: cache };
    assert.equal(spawnSync(process.execPath, [ENTRY, '--help'], { cwd: repoRoot, env, encoding: 'utf8' }).status, 0);
    for (const command of ['agent', 'operator']) {
      const r = spawnSync(process.execPath, [ENTRY, command, '--help'], { cwd: repoRoot, env: { ...env, NODE_DEBUG_NATIVE: 'COMPILE_CACHE' }, encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      const lines = `${r.stdout}${r.stderr}`.split('\n');
      const served = lines.filter((l) => /retrieving transpile cache for StrippedTypeScript .*success$/.test(l));
      assert.ok(served.length > 20, `${command}: ${served.length} TypeScript files served from the cache`);
      assert.deepEqual(lines.filter((l) => l.includes('no transpile cache for StrippedTypeScript')), [], `${command}: stripped at run time`);
    }
  } finally {
    rmSync(cache, { recursive: true, force: true });
  }
});

test('the copied files alone run both entrypoints, with only production dependencies imported', () => {
  const { packages } = importClosure();
  const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
  for (const p of packages) assert.ok(p in pkg.dependencies, `${ENTRY} imports ${p}, which npm ci --omit=dev does not install`);
  // Stage the image's /app: the copied paths plus node_modules (here the full one, a superset).
  const app = mkdtempSync(join(tmpdir(), 'fencer-image-'));
  try {
    for (const p of RUNTIME_PATHS) cpSync(join(repoRoot, p), join(app, p), { recursive: true });
    symlinkSync(join(repoRoot, 'node_modules'), join(app, 'node_modules'));
    for (const { command, expect } of [{ command: 'operator', expect: /--lease-name/ }, { command: 'agent', expect: /--drift-seconds/ }]) {
      const r = spawnSync(process.execPath, [ENTRY, command, '--help'], { cwd: app, encoding: 'utf8', env: { ...process.env, NODE_ENV: 'production' } });
      assert.equal(r.status, 0, `node ${ENTRY} ${command} --help: ${r.stderr}`);
      assert.match(r.stdout, expect);
    }
  } finally {
    rmSync(app, { recursive: true, force: true });
  }
});

test('the kubelet\'s command lines (image entrypoint + the chart\'s args, $(VAR) expanded) parse and start', async () => {
  const objects = render();
  const settings = (objects.find((o) => o.kind === 'ConfigMap') as unknown as { data: Record<string, string> }).data;
  type Pod = { spec: { template: { spec: { containers: Array<{ args?: string[]; command?: string[] }> } } } };
  const container = (kind: string) => (objects.find((o) => o.kind === kind) as unknown as Pod).spec.template.spec.containers[0];
  // The kubelet's expansion: $(VAR) from the container's environment (here envFrom the settings ConfigMap).
  const expand = (arg: string) => arg.replace(/\$\(([A-Z_]+)\)/g, (_, v: string) => {
    assert.ok(v in settings, `$(${v}) is not in the settings ConfigMap`);
    return settings[v];
  });
  for (const { file, kind, reaches } of [
    // Past the argument parsing, into the action: the agent wants NODE_NAME (unset here); the
    // operator starts listing with the settings from its environment (and finds no cluster).
    { file: 'Dockerfile.agent', kind: 'DaemonSet', reaches: /the node name is required/ },
    { file: 'Dockerfile.operator', kind: 'Deployment', reaches: /"namespace":"kube-system","lease":"fencer-operator","msg":"operator starting/ },
  ]) {
    const c = container(kind);
    assert.equal(c.command, undefined, `${kind} keeps the image's entrypoint`);
    const [node, ...argv] = [...entrypoint(parse(file).stages[1]), ...(c.args ?? []).map(expand)];
    assert.equal(node, 'node');
    const env = { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_NAME' && k !== 'KUBECONFIG')), ...settings, FENCER_METRICS_PORT: '-1', HOME: '/nonexistent' };
    const output = await runUntil(argv, env, reaches);
    assert.doesNotMatch(output, /unknown option|too many arguments|unknown command|invalid argument/i, `${argv.join(' ')}: ${output}`);
    assert.match(output, reaches, `${argv.join(' ')}: ${output}`);
  }
});

/** Runs node with argv until its output matches `until` or it exits (10 s at most); returns the output. */
function runUntil(argv: string[], env: NodeJS.ProcessEnv, until: RegExp): Promise<string> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, argv, { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const done = () => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      resolve(output);
    };
    const timer = setTimeout(done, 10_000);
    for (const stream of [child.stdout, child.stderr]) stream.setEncoding('utf8').on('data', (chunk: string) => {
      output += chunk;
      if (until.test(output)) done();
    });
    child.on('close', done);
  });
}

test('.dockerignore keeps node_modules and dist out of the build context', () => {
  const ignored = readFileSync(join(repoRoot, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim());
  for (const p of ['node_modules', '.git', 'dist']) assert.ok(ignored.includes(p), p);
});

test('npm run package: the sources tarball, the packaged chart and the CRD, with checksums; dist/ is gitignored', () => {
  const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string; scripts: Record<string, string> };
  assert.equal(pkg.scripts.package, 'node scripts/package.ts');
  assert.match(readFileSync(join(repoRoot, '.gitignore'), 'utf8'), /^dist\/$/m);
  const out = mkdtempSync(join(tmpdir(), 'fencer-dist-'));
  try {
    const a = packageRelease(out);
    const listed = execFileSync('tar', ['tzf', a.tarball], { encoding: 'utf8' }).trim().split('\n');
    const prefix = `fencer-${pkg.version}/`;
    assert.ok(listed.every((f) => f.startsWith(prefix)));
    const files = new Set(listed.map((f) => f.slice(prefix.length)));
    for (const f of [...importClosure().files, 'package.json', 'package-lock.json', 'README.md', 'bin/fencer', ...CRD_FILES]) assert.ok(files.has(f), `${f} is not in the tarball`);
    assert.ok(![...files].some((f) => f.startsWith('node_modules/') || f.startsWith('test/unit/') || f.startsWith('charts/')));
    // Reproducible: packaging again gives the same bytes.
    const first = readFileSync(a.tarball);
    packageRelease(out);
    assert.ok(first.equals(readFileSync(a.tarball)), 'the tarball is byte-for-byte reproducible');

    const chart = yaml.load(execFileSync(helm(), ['show', 'chart', a.chart], { encoding: 'utf8' })) as { name: string; version: string };
    assert.equal(chart.name, 'fencer');
    assert.ok(a.chart.endsWith(`fencer-${chart.version}.tgz`));
    const chartFiles = execFileSync('tar', ['tzf', a.chart], { encoding: 'utf8' });
    for (const f of ['fencer/crds/compiledpolicyset.yaml', 'fencer/crds/addressset.yaml', 'fencer/values.yaml', 'fencer/dashboards/fencer.json', 'fencer/templates/agent-daemonset.yaml']) assert.ok(chartFiles.includes(f), f);
    assert.equal(readFileSync(a.crd, 'utf8'), CRD_FILES.map((f) => readFileSync(join(repoRoot, f), 'utf8')).join('---\n'));
    const sums = readFileSync(a.sums, 'utf8');
    assert.equal(sums.trim().split('\n').length, 3);
    assert.ok(spawnSync('sha256sum', ['-c', 'SHA256SUMS'], { cwd: out }).status === 0, 'checksums verify');
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
