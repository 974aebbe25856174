// Shared by the chart and Prometheus tests: rendering charts/fencer with the pinned helm, the metric
// names Fencer's registries export, and the metric names a PromQL expression reads.
import { execFileSync, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as yaml from 'js-yaml';
import { Registry } from 'prom-client';
import { agentMetrics } from '../../agent/metrics.ts';
import { operatorMetrics } from '../../operator/metrics.ts';
import { npmWindowsMetrics } from '../../runtime/npm-metrics.ts';
import { helmBinary } from '../../scripts/package.ts';

export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
export const chartDir = fileURLToPath(new URL('../../charts/fencer', import.meta.url));
/** The Kubernetes version `helm template` renders for (Capabilities.KubeVersion): the test control plane's. */
export const KUBE_VERSION = '1.34.4';

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: unknown;
}

let helmPath: string | undefined;
export function helm(): string {
  return (helmPath ??= helmBinary());
}

export interface RenderOptions {
  release?: string;
  namespace?: string;
  /** --set key=value pairs. */
  set?: Record<string, string | number | boolean>;
}

export function helmArgs(opts: RenderOptions = {}): string[] {
  return Object.entries(opts.set ?? {}).flatMap(([k, v]) => ['--set', `${k}=${v}`]);
}

/** `helm template` of the chart: every rendered object (CRDs included, as `helm install` would apply them). */
export function render(opts: RenderOptions = {}): K8sObject[] {
  const out = execFileSync(helm(), [
    'template', opts.release ?? 'fencer', chartDir, '--namespace', opts.namespace ?? 'kube-system',
    '--kube-version', KUBE_VERSION, '--include-crds', ...helmArgs(opts),
  ], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return (yaml.loadAll(out) as Array<K8sObject | null>).filter((d): d is K8sObject => d !== null);
}

export function lint(opts: RenderOptions = {}): { code: number; output: string } {
  const r = spawnSync(helm(), ['lint', chartDir, '--namespace', opts.namespace ?? 'kube-system', '--kube-version', KUBE_VERSION, ...helmArgs(opts)], { encoding: 'utf8' });
  return { code: r.status ?? 1, output: r.stdout + r.stderr };
}

export function find(objects: K8sObject[], kind: string, name?: string): K8sObject {
  const found = objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  if (found.length !== 1) throw new Error(`expected one ${kind}${name ? ` ${name}` : ''}, rendered ${found.length}`);
  return found[0];
}

export type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary';

/** Every metric Fencer registers, by name, with its type: operator, Linux agent and Windows agent. */
export async function exportedMetrics(): Promise<Map<string, { type: MetricType; components: string[] }>> {
  const out = new Map<string, { type: MetricType; components: string[] }>();
  const add = async (component: string, registry: Registry) => {
    for (const m of await registry.getMetricsAsJSON()) {
      const entry = out.get(m.name) ?? { type: m.type as unknown as MetricType, components: [] };
      entry.components.push(component);
      out.set(m.name, entry);
    }
  };
  await add('operator', operatorMetrics().registry);
  await add('agent', agentMetrics().registry);
  const windows = new Registry();
  npmWindowsMetrics(windows);
  await add('agent-windows', windows);
  return out;
}

/** The series names a metric exposes: summaries and histograms add _sum and _count (histograms _bucket). */
export function seriesNames(name: string, type: MetricType): string[] {
  if (type === 'summary') return [name, `${name}_sum`, `${name}_count`];
  if (type === 'histogram') return [`${name}_bucket`, `${name}_sum`, `${name}_count`];
  return [name];
}

const KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'and', 'or', 'unless', 'offset', 'bool', 'inf', 'nan', 'atan2']);

/** The metric names a PromQL expression selects (not its functions, keywords or label names). */
export function promqlMetricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, '""') // strings
    .replace(/\{[^}]*\}/g, ' ') // label matchers
    .replace(/\[[^\]]*\]/g, ' ') // range and subquery durations
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ') // label lists
    .replace(/\boffset\s+\d+[smhdwy]/g, ' ');
  const names = new Set<string>();
  for (const m of stripped.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?/g)) {
    if (m[2] || KEYWORDS.has(m[1].toLowerCase())) continue; // a function call or a keyword
    names.add(m[1]);
  }
  return [...names].sort();
}

/** Every PromQL expression of a Grafana dashboard's panels (rows and nested panels included). */
export function dashboardExprs(dashboard: { panels?: unknown[] }): Array<{ panel: string; expr: string }> {
  const out: Array<{ panel: string; expr: string }> = [];
  const visit = (panels: unknown[] = []) => {
    for (const p of panels as Array<{ title?: string; targets?: Array<{ expr?: string }>; panels?: unknown[] }>) {
      for (const t of p.targets ?? []) if (t.expr) out.push({ panel: p.title ?? '?', expr: t.expr });
      visit(p.panels);
    }
  };
  visit(dashboard.panels);
  return out;
}
