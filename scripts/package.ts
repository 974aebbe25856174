// `npm run package`: the release artefacts, in dist/ (gitignored).
//
//   dist/fencer-sources-<version>.tar.gz  the sources that run (Node 24 runs the .ts files as they are):
//                                      what cli/main.ts imports, bin/, the CRD, package.json and
//                                      package-lock.json (install with `npm ci --omit=dev`), README.md.
//                                      Azure NPM's `make azure-npm-archive` equivalent.
//   dist/fencer-<chart version>.tgz    the Helm chart (`helm package charts/fencer`)
//   dist/crds.yaml                     both CRDs, CompiledPolicySet and AddressSet (`kubectl apply -f` it before
//                                      upgrades: Helm never updates CRDs)
//   dist/SHA256SUMS                    checksums of the three
//
// The tarball is reproducible: sorted names, mtime 0, owner 0, no gzip timestamp. Helm comes from
// $HELM, else the pinned build (localcluster/build.sh), else PATH.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = fileURLToPath(new URL('..', import.meta.url));
export const CRD_FILES = ['crds/compiledpolicyset.yaml', 'crds/addressset.yaml'];

/**
 * What the images copy and the tarball carries, relative to the repository root. cli/main.ts
 * imports every command statically, so inspect/, sandbox/ and the sandbox's control-plane and netns
 * helpers (localcluster, netns) load in the operator and agent too. `uncoveredImports()` says
 * which imported file none of these holds; test/unit/images.test.ts requires it to be empty.
 */
export const RUNTIME_PATHS: readonly string[] = [
  'package.json', 'package-lock.json', 'README.md', 'bin',
  'cli', 'crds', 'model', 'oracle', 'matrix', 'operator', 'agent', 'runtime',
  'inspect', 'sandbox', 'localcluster', 'netns',
];

/** The entry point of both images and of `bin/fencer`. */
export const ENTRY = 'cli/main.ts';

// Value imports only: `import type` and `export type` are erased and load nothing.
const IMPORT = /^\s*(?:import|export)\s+(?!type\s)(?:[^'";]*?\sfrom\s+)?['"]([^'"]+)['"]|\bimport\(\s*['"]([^'"]+)['"]\s*\)/gm;

/** Every local file `entry` loads (transitively), relative to the root, and the packages it imports. */
export function importClosure(entry = ENTRY): { files: string[]; packages: string[] } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const visit = (abs: string) => {
    if (files.has(abs)) return;
    files.add(abs);
    for (const m of readFileSync(abs, 'utf8').matchAll(IMPORT)) {
      const spec = m[1] ?? m[2];
      if (spec.startsWith('.')) visit(resolve(dirname(abs), spec));
      else if (!spec.startsWith('node:')) packages.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]);
    }
  };
  visit(join(root, entry));
  return { files: [...files].map((f) => relative(root, f)).sort(), packages: [...packages].sort() };
}

const covered = (file: string, paths: readonly string[]) => paths.some((p) => file === p || file.startsWith(`${p}/`));

/** Files the entry point imports that RUNTIME_PATHS (or the given list) leaves out. */
export function uncoveredImports(paths: readonly string[] = RUNTIME_PATHS): string[] {
  return importClosure().files.filter((f) => !covered(f, paths));
}

/** Every file under RUNTIME_PATHS, sorted. */
export function runtimeFiles(): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    if (!statSync(join(root, rel)).isDirectory()) out.push(rel);
    else for (const entry of readdirSync(join(root, rel))) walk(`${rel}/${entry}`);
  };
  for (const p of RUNTIME_PATHS) walk(p);
  return out.sort();
}

/** The helm binary: $HELM, the test run's (FENCER_TEST_BIN_DIR), the pinned build's, or the one on PATH. */
export function helmBinary(): string {
  if (process.env.HELM) return process.env.HELM;
  const testBin = process.env.FENCER_TEST_BIN_DIR;
  if (testBin && existsSync(join(testBin, 'helm'))) return join(testBin, 'helm');
  const built = spawnSync('bash', [join(root, 'localcluster/build.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const dir = built.status === 0 ? built.stdout.trim().split('\n').pop() : undefined;
  if (dir && existsSync(join(dir, 'helm'))) return join(dir, 'helm');
  return 'helm';
}

const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

export interface Artefacts { dir: string; tarball: string; chart: string; crd: string; sums: string; files: number }

export function packageRelease(out = join(root, 'dist')): Artefacts {
  const missing = uncoveredImports();
  if (missing.length) throw new Error(`${ENTRY} imports files outside RUNTIME_PATHS: ${missing.join(', ')}`);
  const version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });

  const files = runtimeFiles();
  const tarball = join(out, `fencer-sources-${version}.tar.gz`);
  const tar = join(out, `fencer-sources-${version}.tar`);
  execFileSync('tar', [
    '--create', '--file', tar, '--directory', root, '--sort=name', '--mtime=@0', '--owner=0', '--group=0', '--numeric-owner',
    '--mode=u+rw,go+r,go-w', `--transform=s,^,fencer-${version}/,`, '--files-from=-',
  ], { input: files.join('\n') + '\n' });
  execFileSync('gzip', ['-n', '-9', '-f', tar]);

  const helm = helmBinary();
  const packaged = execFileSync(helm, ['package', join(root, 'charts/fencer'), '--destination', out], { encoding: 'utf8' });
  const chart = /saved it to: (.+\.tgz)/.exec(packaged)?.[1]?.trim();
  if (!chart || !existsSync(chart)) throw new Error(`helm package said: ${packaged}`);

  const crd = join(out, 'crds.yaml');
  writeFileSync(crd, CRD_FILES.map((f) => readFileSync(join(root, f), 'utf8')).join('---\n'));

  const sums = join(out, 'SHA256SUMS');
  writeFileSync(sums, [tarball, chart, crd].map((f) => `${sha256(f)}  ${relative(out, f)}\n`).join(''));
  return { dir: out, tarball, chart, crd, sums, files: files.length };
}

if (import.meta.main) {
  const a = packageRelease(process.argv[2] ? resolve(process.argv[2]) : undefined);
  for (const f of [a.tarball, a.chart, a.crd, a.sums]) console.log(relative(process.cwd(), f));
  console.error(`[package] ${a.files} files in the tarball; install it with: tar xzf …; cd fencer-*; npm ci --omit=dev; bin/fencer --help`);
}
