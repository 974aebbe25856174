// Reads a scenario file (../shared/reference/scenario-format.md) into a fully defaulted Scenario,
// or fails with a ScenarioError naming the file, the field and the reason.
import { readFileSync } from 'node:fs';
import * as yaml from 'js-yaml';
import type { Protocol } from '../model/cluster.ts';

export class ScenarioError extends Error {
  readonly file: string;
  readonly field: string;
  constructor(file: string, field: string, reason: string) {
    super(`${file}: ${field}: ${reason}`);
    this.file = file;
    this.field = field;
  }
}

export interface PortSpec { name?: string; port: number; protocol: Protocol }
export interface PodSpec { namespace: string; name: string; labels: Record<string, string>; node: string; ports: PortSpec[] }
export interface Probe { protocol: Protocol; port: number; text: string }
export interface ObjectRef { kind: string; namespace?: string; name: string }
export interface LabelChange { kind: 'Namespace' | 'Pod'; namespace?: string; name: string; set: Record<string, string>; remove: string[] }

export interface Step {
  delete: ObjectRef[];
  deletePods: string[];
  createPods: PodSpec[];
  labels: LabelChange[];
  apply: Array<Record<string, unknown>>;
  /** Probe text → expected grid text. */
  expect?: Map<string, string>;
}

export interface Scenario {
  file: string;
  name: string;
  description?: string;
  nodes: string[];
  namespaces: Map<string, Record<string, string>>;
  pods: PodSpec[];
  probes: Probe[];
  steps: Step[];
}

const PROTOCOLS = ['TCP', 'UDP', 'SCTP'] as const;

export function standardPorts(): PortSpec[] {
  return [80, 81].flatMap((port) => PROTOCOLS.map((protocol) => ({ name: `serve-${port}-${protocol.toLowerCase()}`, port, protocol })));
}

export function loadScenario(file: string): Scenario {
  let doc: unknown;
  try {
    doc = yaml.load(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new ScenarioError(file, '(file)', (e as Error).message.split('\n')[0]);
  }
  return parseScenario(file, doc);
}

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function parseScenario(file: string, doc: unknown): Scenario {
  const fail = (field: string, reason: string): never => { throw new ScenarioError(file, field, reason); };
  if (!isObj(doc)) fail('(file)', 'a scenario is a YAML mapping');
  const d = doc as Obj;
  known(d, ['name', 'description', 'cluster', 'probes', 'steps'], '', fail);
  if (typeof d.name !== 'string' || d.name === '') fail('name', 'required, a non-empty string');
  const cluster = d.cluster === undefined ? {} : d.cluster;
  if (!isObj(cluster)) fail('cluster', 'must be a mapping');
  const c = cluster as Obj;
  known(c, ['nodes', 'namespaces', 'pods'], 'cluster.', fail);
  const nodes = c.nodes === undefined ? ['node-1', 'node-2'] : stringList(c.nodes, 'cluster.nodes', fail);
  if (nodes.length === 0) fail('cluster.nodes', 'at least one node is needed');
  const namespaces = parseNamespaces(c.namespaces, fail);
  const ctx: PodCtx = { nodes, namespaces, fail, roundRobin: 0 };
  const pods = c.pods === undefined
    ? [...namespaces.keys()].flatMap((ns) => ['a', 'b', 'c'].map((name) => defaultPod(ctx, ns, name)))
    : list(c.pods, 'cluster.pods', fail).map((p, i) => parsePod(ctx, p, `cluster.pods[${i}]`, false));
  const probes = (d.probes === undefined ? ['TCP/80'] : stringList(d.probes, 'probes', fail)).map((p, i) => parseProbe(p, `probes[${i}]`, fail));
  const steps = d.steps === undefined ? [] : list(d.steps, 'steps', fail).map((s, i) => parseStep(ctx, s, `steps[${i}]`, probes));
  return { file, name: d.name as string, description: d.description as string | undefined, nodes, namespaces, pods, probes, steps };
}

type Fail = (field: string, reason: string) => never;
interface PodCtx { nodes: string[]; namespaces: Map<string, Record<string, string>>; fail: Fail; roundRobin: number }

function known(o: Obj, keys: string[], prefix: string, fail: Fail): void {
  for (const k of Object.keys(o)) if (!keys.includes(k)) fail(`${prefix}${k}`, `unknown field (expected one of ${keys.join(', ')})`);
}

function list(v: unknown, field: string, fail: Fail): unknown[] {
  if (!Array.isArray(v)) fail(field, 'must be a list');
  return v as unknown[];
}

function stringList(v: unknown, field: string, fail: Fail): string[] {
  const l = list(v, field, fail);
  l.forEach((s, i) => { if (typeof s !== 'string') fail(`${field}[${i}]`, 'must be a string'); });
  return l as string[];
}

function labelMap(v: unknown, field: string, fail: Fail): Record<string, string> {
  if (v === undefined || v === null) return {};
  if (!isObj(v)) fail(field, 'must be a mapping of label names to values');
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(v as Obj)) {
    if (typeof val !== 'string' && typeof val !== 'number' && typeof val !== 'boolean') fail(`${field}.${k}`, 'a label value must be a string');
    out[k] = String(val);
  }
  return out;
}

function parseNamespaces(v: unknown, fail: Fail): Map<string, Record<string, string>> {
  if (v === undefined) return new Map(['x', 'y', 'z'].map((n) => [n, { ns: n }]));
  if (!isObj(v)) fail('cluster.namespaces', 'must be a mapping of namespace names to labels');
  return new Map(Object.entries(v as Obj).map(([name, labels]) => [name, labelMap(labels, `cluster.namespaces.${name}`, fail)]));
}

function defaultPod(ctx: PodCtx, namespace: string, name: string): PodSpec {
  const node = ctx.nodes[ctx.roundRobin++ % ctx.nodes.length];
  return { namespace, name, labels: { pod: name }, node, ports: standardPorts() };
}

function parsePod(ctx: PodCtx, v: unknown, field: string, nodeRequired: boolean): PodSpec {
  const { fail } = ctx;
  if (!isObj(v)) fail(field, 'a pod is a mapping');
  const p = v as Obj;
  known(p, ['namespace', 'name', 'labels', 'node', 'ports'], `${field}.`, fail);
  if (typeof p.namespace !== 'string') fail(`${field}.namespace`, 'required, a string');
  if (typeof p.name !== 'string') fail(`${field}.name`, 'required, a string');
  if (!ctx.namespaces.has(p.namespace as string)) fail(`${field}.namespace`, `namespace "${p.namespace}" is not in cluster.namespaces`);
  if (nodeRequired && p.node === undefined) fail(`${field}.node`, 'required for a pod created in a step');
  if (p.node !== undefined && !ctx.nodes.includes(p.node as string)) fail(`${field}.node`, `node "${p.node}" is not in cluster.nodes`);
  const node = (p.node as string | undefined) ?? ctx.nodes[ctx.roundRobin % ctx.nodes.length];
  ctx.roundRobin++;
  const ports = p.ports === undefined ? standardPorts() : list(p.ports, `${field}.ports`, fail).map((q, i) => parsePort(q, `${field}.ports[${i}]`, fail));
  const labels = p.labels === undefined ? { pod: p.name as string } : labelMap(p.labels, `${field}.labels`, fail);
  return { namespace: p.namespace as string, name: p.name as string, labels, node, ports };
}

function parsePort(v: unknown, field: string, fail: Fail): PortSpec {
  if (!isObj(v)) fail(field, 'a port is a mapping {name, port, protocol}');
  const q = v as Obj;
  known(q, ['name', 'port', 'protocol'], `${field}.`, fail);
  if (!Number.isInteger(q.port) || (q.port as number) < 1 || (q.port as number) > 65535) fail(`${field}.port`, 'required, an integer 1-65535');
  const protocol = (q.protocol ?? 'TCP') as Protocol;
  if (!PROTOCOLS.includes(protocol)) fail(`${field}.protocol`, `must be one of ${PROTOCOLS.join(', ')}`);
  if (q.name !== undefined && typeof q.name !== 'string') fail(`${field}.name`, 'must be a string');
  return { name: q.name as string | undefined, port: q.port as number, protocol };
}

function parseProbe(text: string, field: string, fail: Fail): Probe {
  const m = /^(TCP|UDP|SCTP)\/(\d+)$/.exec(text);
  if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) fail(field, `"${text}" is not PROTOCOL/PORT (TCP, UDP or SCTP; port 1-65535)`);
  return { protocol: m![1] as Protocol, port: Number(m![2]), text };
}

function parseStep(ctx: PodCtx, v: unknown, field: string, probes: Probe[]): Step {
  const { fail } = ctx;
  if (!isObj(v)) fail(field, 'a step is a mapping');
  const s = v as Obj;
  known(s, ['delete', 'deletePods', 'createPods', 'labels', 'apply', 'expect'], `${field}.`, fail);
  const del = s.delete === undefined ? [] : list(s.delete, `${field}.delete`, fail).map((r, i) => parseRef(r, `${field}.delete[${i}]`, fail));
  const deletePods = s.deletePods === undefined ? [] : stringList(s.deletePods, `${field}.deletePods`, fail);
  deletePods.forEach((p, i) => { if (!/^[^/]+\/[^/]+$/.test(p)) fail(`${field}.deletePods[${i}]`, `"${p}" is not NAMESPACE/NAME`); });
  const createPods = s.createPods === undefined ? [] : list(s.createPods, `${field}.createPods`, fail).map((p, i) => parsePod(ctx, p, `${field}.createPods[${i}]`, true));
  const labels = s.labels === undefined ? [] : list(s.labels, `${field}.labels`, fail).map((l, i) => parseLabelChange(l, `${field}.labels[${i}]`, fail));
  const apply = s.apply === undefined ? [] : list(s.apply, `${field}.apply`, fail).map((m, i) => parseManifest(m, `${field}.apply[${i}]`, fail));
  return { delete: del, deletePods, createPods, labels, apply, expect: s.expect === undefined ? undefined : parseExpect(s.expect, `${field}.expect`, probes, fail) };
}

function parseRef(v: unknown, field: string, fail: Fail): ObjectRef {
  if (!isObj(v)) fail(field, 'must be a mapping {kind, namespace, name}');
  const r = v as Obj;
  known(r, ['kind', 'namespace', 'name', 'apiVersion'], `${field}.`, fail);
  if (r.kind !== 'NetworkPolicy' && r.kind !== 'Pod') fail(`${field}.kind`, 'must be NetworkPolicy or Pod');
  if (typeof r.name !== 'string') fail(`${field}.name`, 'required, a string');
  if (typeof r.namespace !== 'string') fail(`${field}.namespace`, 'required, a string');
  return { kind: r.kind as string, namespace: r.namespace as string, name: r.name as string };
}

function parseLabelChange(v: unknown, field: string, fail: Fail): LabelChange {
  if (!isObj(v)) fail(field, 'must be a mapping {kind, namespace, name, set, remove}');
  const l = v as Obj;
  known(l, ['kind', 'namespace', 'name', 'set', 'remove'], `${field}.`, fail);
  if (l.kind !== 'Namespace' && l.kind !== 'Pod') fail(`${field}.kind`, 'must be Namespace or Pod');
  if (typeof l.name !== 'string') fail(`${field}.name`, 'required, a string');
  if (l.kind === 'Pod' && typeof l.namespace !== 'string') fail(`${field}.namespace`, 'required for a Pod');
  const remove = l.remove === undefined ? [] : stringList(l.remove, `${field}.remove`, fail);
  return { kind: l.kind as 'Namespace' | 'Pod', namespace: l.namespace as string | undefined, name: l.name as string, set: labelMap(l.set, `${field}.set`, fail), remove };
}

function parseManifest(v: unknown, field: string, fail: Fail): Record<string, unknown> {
  if (!isObj(v)) fail(field, 'must be a NetworkPolicy manifest');
  const m = v as Obj;
  if (m.kind !== 'NetworkPolicy') fail(`${field}.kind`, `must be NetworkPolicy (got ${JSON.stringify(m.kind)})`);
  if (m.apiVersion !== 'networking.k8s.io/v1') fail(`${field}.apiVersion`, 'must be networking.k8s.io/v1');
  if (!isObj(m.metadata) || typeof (m.metadata as Obj).name !== 'string') fail(`${field}.metadata.name`, 'required');
  if (!isObj(m.spec)) fail(`${field}.spec`, 'required, a mapping');
  return m;
}

function parseExpect(v: unknown, field: string, probes: Probe[], fail: Fail): Map<string, string> {
  if (!isObj(v)) fail(field, 'must map probes (like TCP/80) to grids');
  const out = new Map<string, string>();
  for (const [probe, grid] of Object.entries(v as Obj)) {
    if (!probes.some((p) => p.text === probe)) fail(`${field}.${probe}`, `"${probe}" is not one of the scenario's probes (${probes.map((p) => p.text).join(', ')})`);
    if (typeof grid !== 'string') fail(`${field}.${probe}`, 'a grid is a block of text');
    out.set(probe, grid as string);
  }
  return out;
}
