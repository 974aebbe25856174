// charts/fencer, statically: `helm template` for default and non-default values, `helm lint`, the
// CRD copy, the operator's RBAC against operator/rbac.yaml, labels, and what each object must say.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import * as yaml from 'js-yaml';
import { chartDir, dashboardExprs, exportedMetrics, find, lint, promqlMetricNames, render, repoRoot, seriesNames, type K8sObject } from '../helpers/chart.ts';

type Rule = { apiGroups: string[]; resources: string[]; verbs: string[] };
type Container = {
  name: string; image: string; args?: string[]; command?: string[];
  env?: Array<{ name: string; valueFrom?: { fieldRef?: { fieldPath: string } } }>;
  envFrom?: Array<{ configMapRef: { name: string } }>;
  ports?: Array<{ name: string; containerPort: number; hostPort?: number }>;
  readinessProbe?: { httpGet: { path: string; port: number | string } };
  livenessProbe?: { httpGet: { path: string; port: number | string } };
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: Record<string, unknown> & { capabilities?: { add?: string[]; drop?: string[] } };
  volumeMounts?: Array<{ name: string; mountPath: string }>;
};
type PodSpec = {
  serviceAccountName: string; hostNetwork?: boolean; priorityClassName?: string; containers: Container[];
  securityContext?: Record<string, unknown>; tolerations?: Array<Record<string, string>>; nodeSelector?: Record<string, string>;
  volumes?: Array<{ name: string; hostPath?: { path: string; type: string } }>;
};
type Workload = K8sObject & { spec: { replicas?: number; selector: { matchLabels: Record<string, string> }; template: { metadata: { labels: Record<string, string>; annotations: Record<string, string> }; spec: PodSpec } } };

const APP_LABELS = ['app.kubernetes.io/name', 'app.kubernetes.io/instance', 'app.kubernetes.io/version', 'app.kubernetes.io/managed-by', 'app.kubernetes.io/part-of', 'app.kubernetes.io/component'];
const ALL_ON = { 'agent.windows.enabled': true, 'serviceMonitor.enabled': true, 'prometheusRule.enabled': true, 'dashboards.enabled': true };

const defaults = render();
const allOn = render({ release: 'edge', namespace: 'net-system', set: ALL_ON });

const kinds = (objects: K8sObject[]) => objects.map((o) => `${o.kind}/${o.metadata.name}`).sort();
const workload = (objects: K8sObject[], kind: string, name: string) => find(objects, kind, name) as Workload;
const settings = (objects: K8sObject[], name = 'fencer-settings') => (find(objects, 'ConfigMap', name) as K8sObject & { data: Record<string, string> }).data;

test('the default render: operator, Linux agent, RBAC, settings and the NPM metrics Service; nothing optional', () => {
  assert.deepEqual(kinds(defaults), [
    'ClusterRole/fencer-agent', 'ClusterRole/fencer-operator',
    'ClusterRoleBinding/fencer-agent', 'ClusterRoleBinding/fencer-operator',
    'ConfigMap/fencer-settings',
    'CustomResourceDefinition/addresssets.fencer.dev', 'CustomResourceDefinition/compiledpolicysets.fencer.dev',
    'DaemonSet/fencer-agent',
    'Deployment/fencer-operator',
    'PodDisruptionBudget/fencer-operator',
    'Role/fencer-operator-leader-election', 'RoleBinding/fencer-operator-leader-election',
    'Service/npm-metrics-cluster-service',
    'ServiceAccount/fencer-agent', 'ServiceAccount/fencer-operator',
    'ValidatingAdmissionPolicy/fencer-agent-own-node-status', 'ValidatingAdmissionPolicyBinding/fencer-agent-own-node-status',
  ]);
  for (const o of defaults) if (o.kind !== 'CustomResourceDefinition' && !o.kind.startsWith('Cluster') && !o.kind.startsWith('ValidatingAdmissionPolicy')) assert.equal(o.metadata.namespace, 'kube-system', `${o.kind}/${o.metadata.name}`);
});

test('every value switched on: Windows agent, ServiceMonitor, PrometheusRule, dashboards, in another namespace and release', () => {
  const added = kinds(allOn).filter((k) => !kinds(render({ release: 'edge', namespace: 'net-system' })).includes(k));
  assert.deepEqual(added, ['ConfigMap/edge-fencer-dashboards', 'DaemonSet/edge-fencer-agent-windows', 'PrometheusRule/edge-fencer', 'Service/edge-fencer-agent-metrics', 'ServiceMonitor/edge-fencer']);
  for (const o of allOn) if (o.metadata.namespace !== undefined) assert.equal(o.metadata.namespace, 'net-system', `${o.kind}/${o.metadata.name}`);
  const binding = find(allOn, 'ClusterRoleBinding', 'edge-fencer-operator') as K8sObject & { subjects: Array<{ name: string; namespace: string }> };
  assert.deepEqual(binding.subjects, [{ kind: 'ServiceAccount', name: 'edge-fencer-operator', namespace: 'net-system' }]);
  assert.equal(settings(allOn, 'edge-fencer-settings').FENCER_NAMESPACE, 'net-system', 'the Lease lives in the release namespace, where the Role grants it');
});

test('every object and every pod template carries the app.kubernetes.io labels', () => {
  for (const o of [...defaults, ...allOn]) {
    if (o.kind === 'CustomResourceDefinition') continue; // crds/ is not templated (Helm installs it as is)
    for (const label of APP_LABELS) assert.ok(o.metadata.labels?.[label], `${o.kind}/${o.metadata.name} lacks ${label}`);
    assert.equal(o.metadata.labels?.['app.kubernetes.io/managed-by'], 'Helm');
    const template = (o as Workload).spec?.template;
    if (template) {
      for (const label of APP_LABELS) assert.ok(template.metadata.labels[label], `${o.kind}/${o.metadata.name} pods lack ${label}`);
      for (const [k, v] of Object.entries((o as Workload).spec.selector.matchLabels)) assert.equal(template.metadata.labels[k], v, 'the selector matches the pods');
    }
  }
});

test('helm lint is clean, for the defaults and with every switch on', () => {
  for (const opts of [{}, { set: ALL_ON }]) {
    const r = lint(opts);
    assert.equal(r.code, 0, r.output);
    assert.doesNotMatch(r.output, /\[(WARNING|ERROR)\]/, r.output);
  }
});

test('values.schema.json rejects a misspelt key and values the components do not accept', () => {
  for (const [set, message] of [
    [{ operater: 'x' }, /additional properties 'operater' not allowed/],
    [{ 'agent.hookPosition': 'last' }, /agent\/hookPosition/],
    [{ 'agent.iptablesMode': 'iptables' }, /agent\/iptablesMode/],
    [{ logLevel: 'verbose' }, /logLevel/],
    [{ 'operator.image.digest': 'latest' }, /operator\/image\/digest/],
  ] as const) {
    assert.throws(() => render({ set }), (e: Error & { stderr?: string }) => message.test(String(e.stderr)), JSON.stringify(set));
  }
});

test('the chart\'s CRDs are the top-level ones, byte for byte', () => {
  for (const [file, name] of [['compiledpolicyset.yaml', 'compiledpolicysets.fencer.dev'], ['addressset.yaml', 'addresssets.fencer.dev']]) {
    assert.equal(readFileSync(`${chartDir}/crds/${file}`, 'utf8'), readFileSync(`${repoRoot}crds/${file}`, 'utf8'));
    const crd = find(defaults, 'CustomResourceDefinition', name);
    assert.deepEqual(crd, yaml.load(readFileSync(`${repoRoot}crds/${file}`, 'utf8')));
  }
});

test('the operator\'s ClusterRole and leader-election Role grant exactly operator/rbac.yaml\'s rules', () => {
  const source = yaml.loadAll(readFileSync(`${repoRoot}operator/rbac.yaml`, 'utf8')) as Array<K8sObject & { rules?: Rule[] }>;
  const rules = (objects: Array<K8sObject & { rules?: Rule[] }>, kind: string) => objects.filter((o) => o.kind === kind && o.metadata.name.includes('operator')).map((o) => o.rules);
  for (const objects of [defaults, allOn]) {
    assert.deepEqual(rules(objects, 'ClusterRole'), rules(source, 'ClusterRole'));
    assert.deepEqual(rules(objects, 'Role'), rules(source, 'Role'));
  }
  const role = find(defaults, 'Role') as K8sObject & { rules: Rule[] };
  assert.equal(role.metadata.namespace, 'kube-system', 'leases in its own namespace only');
});

test('the agent may read CompiledPolicySets, patch their status and watch AddressSets, nothing else', () => {
  const role = find(defaults, 'ClusterRole', 'fencer-agent') as K8sObject & { rules: Rule[] };
  assert.deepEqual(role.rules, [
    { apiGroups: ['fencer.dev'], resources: ['compiledpolicysets'], verbs: ['get', 'list', 'watch'] },
    { apiGroups: ['fencer.dev'], resources: ['compiledpolicysets/status'], verbs: ['patch'] },
    { apiGroups: ['fencer.dev'], resources: ['addresssets'], verbs: ['list', 'watch'] },
  ]);
  assert.ok(!defaults.some((o) => o.kind === 'Role' && o.metadata.name.includes('agent')));
});

test('operator Deployment: 2 replicas, Lease identity = pod name, settings, probes, non-root, read-only root, PDB', () => {
  const d = workload(defaults, 'Deployment', 'fencer-operator');
  assert.equal(d.spec.replicas, 2);
  const pod = d.spec.template.spec;
  assert.equal(pod.serviceAccountName, 'fencer-operator');
  const [c] = pod.containers;
  assert.equal(c.args, undefined, 'the image\'s entrypoint names the command; settings come from the environment');
  assert.equal(c.command, undefined);
  assert.equal(c.image, 'fencer/operator:0.1.0');
  assert.deepEqual(c.env?.find((e) => e.name === 'FENCER_IDENTITY')?.valueFrom, { fieldRef: { fieldPath: 'metadata.name' } });
  assert.deepEqual(c.envFrom, [{ configMapRef: { name: 'fencer-settings' } }]);
  assert.deepEqual(c.readinessProbe?.httpGet, { path: '/readyz', port: 'metrics' });
  assert.deepEqual(c.livenessProbe?.httpGet, { path: '/healthz', port: 'metrics' });
  assert.deepEqual(c.ports?.map((p) => [p.name, p.containerPort]), [['metrics', 10091]]);
  assert.ok(c.resources?.requests?.cpu && c.resources.requests.memory && c.resources.limits?.memory);
  assert.equal(pod.securityContext?.runAsNonRoot, true);
  assert.equal(pod.securityContext?.runAsUser, 65532);
  assert.equal(c.securityContext?.readOnlyRootFilesystem, true);
  assert.equal(c.securityContext?.allowPrivilegeEscalation, false);
  assert.deepEqual(c.securityContext?.capabilities, { drop: ['ALL'] });
  // Azure NPM's pod-based job scrapes /node-metrics from annotated pods, which the operator does not serve.
  assert.equal(d.spec.template.metadata.annotations['azure.npm/scrapeable'], undefined);
  assert.equal(workload(render({ set: { 'azureNpm.annotateOperator': true } }), 'Deployment', 'fencer-operator').spec.template.metadata.annotations['azure.npm/scrapeable'], '');
  assert.match(d.spec.template.metadata.annotations['checksum/settings'], /^[0-9a-f]{64}$/);
  const pdb = find(defaults, 'PodDisruptionBudget') as K8sObject & { spec: { maxUnavailable: number; selector: { matchLabels: Record<string, string> } } };
  assert.deepEqual(pdb.spec.selector.matchLabels, d.spec.selector.matchLabels);
  assert.equal(pdb.spec.maxUnavailable, 1);
});

test('every operator setting in the ConfigMap is an environment variable `fencer operator` reads', () => {
  const source = readFileSync(`${repoRoot}cli/operator.ts`, 'utf8') + readFileSync(`${repoRoot}runtime/log.ts`, 'utf8');
  const data = settings(defaults);
  const operatorKeys = Object.keys(data).filter((k) => !k.startsWith('FENCER_AGENT_') && !k.startsWith('FENCER_HNS_'));
  assert.ok(operatorKeys.length >= 7);
  for (const key of operatorKeys) assert.ok(source.includes(`'${key}'`) || source.includes(`.${key}`), `${key} is read by nobody`);
  assert.equal(data.FENCER_NAMESPACE, 'kube-system');
  assert.equal(data.FENCER_LEASE_NAME, 'fencer-operator');
  assert.equal(data.FENCER_METRICS_PORT, '10091');
});

test('Linux agent DaemonSet: hostNetwork, NET_ADMIN + NET_RAW only, xtables lock, every taint, node-critical, /healthz', () => {
  const ds = workload(defaults, 'DaemonSet', 'fencer-agent');
  const pod = ds.spec.template.spec;
  const [c] = pod.containers;
  assert.equal(pod.hostNetwork, true);
  assert.equal(pod.serviceAccountName, 'fencer-agent');
  assert.equal(pod.priorityClassName, 'system-node-critical');
  assert.deepEqual(pod.tolerations, [{ operator: 'Exists' }]);
  assert.deepEqual(pod.nodeSelector, { 'kubernetes.io/os': 'linux' });
  assert.equal(c.securityContext?.privileged, false);
  assert.deepEqual(c.securityContext?.capabilities, { drop: ['ALL'], add: ['NET_ADMIN', 'NET_RAW'] });
  assert.equal(c.securityContext?.readOnlyRootFilesystem, true);
  const lock = pod.volumes?.find((v) => v.hostPath?.path === '/run/xtables.lock');
  assert.deepEqual(lock?.hostPath, { path: '/run/xtables.lock', type: 'FileOrCreate' });
  assert.deepEqual(c.volumeMounts?.find((m) => m.name === lock?.name)?.mountPath, '/run/xtables.lock');
  assert.deepEqual(c.readinessProbe?.httpGet, { path: '/healthz', port: 10091 });
  assert.deepEqual(c.env?.find((e) => e.name === 'NODE_NAME')?.valueFrom, { fieldRef: { fieldPath: 'spec.nodeName' } });
  assert.deepEqual(c.ports?.map((p) => [p.containerPort, p.hostPort]), [[10091, 10091]]);
  assert.equal(ds.spec.template.metadata.annotations['azure.npm/scrapeable'], '');
  assert.equal(c.image, 'fencer/agent:0.1.0');
});

test('the agent\'s arguments are flags `fencer agent` has, each fed by a key of the settings ConfigMap', () => {
  const help = spawnSync(process.execPath, [`${repoRoot}cli/main.ts`, 'agent', '--help'], { encoding: 'utf8' });
  assert.equal(help.status, 0, help.stderr);
  const data = settings(defaults);
  const [c] = workload(defaults, 'DaemonSet', 'fencer-agent').spec.template.spec.containers;
  assert.equal(c.command, undefined, 'the image\'s entrypoint `node cli/main.ts agent` stays');
  assert.ok(c.args?.length);
  for (const arg of c.args!) {
    const m = /^(--[a-z-]+)=\$\(([A-Z_]+)\)$/.exec(arg);
    assert.ok(m, `${arg}: expected --flag=$(VAR)`);
    assert.match(help.stdout, new RegExp(`${m[1]} <`), `fencer agent has no ${m[1]}`);
    assert.ok(m[2] in data, `${m[2]} is not in the settings ConfigMap`);
  }
  // The values the agent accepts (cli/agent.ts): the chart's defaults are among them.
  assert.ok(['after-kube-services', 'first'].includes(data.FENCER_AGENT_HOOK_POSITION));
  assert.ok(['auto', 'nft', 'legacy'].includes(data.FENCER_AGENT_IPTABLES_MODE));
  assert.equal(data.FENCER_AGENT_DATAPLANE, 'auto');
  assert.equal(settings(render({ set: { 'agent.dataplane': 'nftables' } })).FENCER_AGENT_DATAPLANE, 'nftables');
});

test('npm-metrics-cluster-service: port 9000 → 10091 on the operator pods', () => {
  const svc = find(defaults, 'Service', 'npm-metrics-cluster-service') as K8sObject & { spec: { selector: Record<string, string>; ports: Array<{ port: number; targetPort: number }> } };
  assert.equal(svc.metadata.namespace, 'kube-system');
  assert.deepEqual(svc.spec.ports.map((p) => [p.port, p.targetPort]), [[9000, 10091]]);
  assert.deepEqual(svc.spec.selector, workload(defaults, 'Deployment', 'fencer-operator').spec.selector.matchLabels);
  const off = render({ set: { 'azureNpm.clusterMetricsService': false, 'azureNpm.scrapeableAnnotation': false } });
  assert.ok(!off.some((o) => o.metadata.name === 'npm-metrics-cluster-service'));
  assert.equal(workload(off, 'DaemonSet', 'fencer-agent').spec.template.metadata.annotations['azure.npm/scrapeable'], undefined);
});

test('Windows agent: HostProcess on Windows nodes, the same ServiceAccount, NODE_NAME and NODE_IP', () => {
  const ds = workload(allOn, 'DaemonSet', 'edge-fencer-agent-windows');
  const pod = ds.spec.template.spec;
  assert.deepEqual(pod.nodeSelector, { 'kubernetes.io/os': 'windows' });
  assert.deepEqual(pod.securityContext, { windowsOptions: { hostProcess: true, runAsUserName: 'NT AUTHORITY\\SYSTEM' } });
  assert.equal(pod.hostNetwork, true);
  assert.equal(pod.serviceAccountName, 'edge-fencer-agent');
  const [c] = pod.containers;
  assert.deepEqual(c.command?.slice(-3), ['agent', '--dataplane', 'windows']);
  assert.deepEqual(c.env?.map((e) => [e.name, e.valueFrom?.fieldRef?.fieldPath]), [['NODE_NAME', 'spec.nodeName'], ['NODE_IP', 'status.hostIP']]);
  assert.ok(!defaults.some((o) => o.metadata.name.endsWith('agent-windows')), 'off by default');
});

test('ServiceMonitor: /cluster-metrics from the NPM Service and /node-metrics from a headless Service over the agents', () => {
  const sm = find(allOn, 'ServiceMonitor') as K8sObject & { spec: { selector: { matchLabels: Record<string, string>; matchExpressions: Array<{ values: string[] }> }; endpoints: Array<{ port: string; path: string }> } };
  assert.deepEqual(sm.spec.endpoints.map((e) => [e.port, e.path]), [['cluster-metrics', '/cluster-metrics'], ['node-metrics', '/node-metrics']]);
  const services = allOn.filter((o) => o.kind === 'Service') as Array<K8sObject & { spec: { clusterIP?: string; ports: Array<{ name: string }> } }>;
  for (const svc of services) {
    assert.equal(svc.metadata.labels?.['app.kubernetes.io/instance'], sm.spec.selector.matchLabels['app.kubernetes.io/instance']);
    assert.ok(sm.spec.selector.matchExpressions[0].values.includes(svc.metadata.labels!['fencer.dev/metrics']));
  }
  assert.deepEqual(services.map((s) => s.spec.ports[0].name).sort(), ['cluster-metrics', 'node-metrics']);
  const headless = find(allOn, 'Service', 'edge-fencer-agent-metrics') as K8sObject & { spec: { clusterIP: string } };
  assert.equal(headless.spec.clusterIP, 'None');
});

test('PrometheusRule: Azure NPM\'s two alerts and Fencer\'s three, on metrics Fencer exports', async () => {
  const rule = find(allOn, 'PrometheusRule') as K8sObject & { spec: { groups: Array<{ name: string; rules: Array<{ alert: string; expr: string; for?: string }> }> } };
  const rules = rule.spec.groups.flatMap((g) => g.rules);
  assert.deepEqual(rules.map((r) => r.alert), ['NpmPolicyAddFailed', 'NpmPodCreateSlow', 'FencerNodeBehind', 'FencerDriftRepaired', 'FencerApplyFailed']);
  const expr = (alert: string) => rules.find((r) => r.alert === alert)!.expr;
  assert.match(expr('NpmPolicyAddFailed'), /increase\(npm_add_policy_exec_time_count\{had_error="true"\}\[5m\]\) > 0/);
  assert.equal(expr('NpmPodCreateSlow'), 'npm_controller_pod_exec_time{operation="create",quantile="0.5",had_error="false"} > 100');
  assert.equal(rules.find((r) => r.alert === 'FencerNodeBehind')!.for, '1m');
  const series = await exportedSeries();
  for (const r of rules) for (const name of promqlMetricNames(r.expr)) assert.ok(series.has(name), `${r.alert} reads ${name}, which Fencer does not export`);
});

test('dashboards: a ConfigMap for the Grafana sidecar holding the dashboard, whose every query reads metrics Fencer exports', async () => {
  const cm = find(allOn, 'ConfigMap', 'edge-fencer-dashboards') as K8sObject & { data: Record<string, string> };
  assert.equal(cm.metadata.labels?.grafana_dashboard, '1');
  const file = readFileSync(`${chartDir}/dashboards/fencer.json`, 'utf8');
  assert.equal(cm.data['fencer.json'], file.trimEnd());
  const dashboard = JSON.parse(file) as { uid: string; panels: Array<{ type: string; title: string }> };
  assert.ok(dashboard.uid);
  const exprs = dashboardExprs(dashboard);
  assert.ok(exprs.length >= 20, `${exprs.length} queries`);
  const series = await exportedSeries();
  const read = new Set<string>();
  for (const { panel, expr } of exprs) {
    const names = promqlMetricNames(expr);
    assert.ok(names.length > 0, `${panel}: ${expr} reads no metric`);
    for (const name of names) {
      assert.ok(series.has(name), `panel "${panel}" reads ${name}, which Fencer does not export`);
      read.add(series.get(name)!);
    }
  }
  // The views NPM users know, and Fencer's sync state.
  for (const name of ['npm_num_policies', 'npm_num_iptables_rules', 'npm_num_ipsets', 'npm_num_ipset_entries', 'npm_ipset_counts', 'npm_add_policy_exec_time', 'npm_controller_pod_exec_time', 'fencer_cps_nodes', 'fencer_agent_enforced_generation']) {
    assert.ok(read.has(name), `no panel shows ${name}`);
  }
});

test('the PromQL metric-name extraction skips functions, keywords, labels, strings and durations', () => {
  assert.deepEqual(promqlMetricNames('sum by (le, instance) (rate(a_bucket{x="y or z"}[5m])) > on (instance) group_left b offset 5m unless c'), ['a_bucket', 'b', 'c']);
  assert.deepEqual(promqlMetricNames('histogram_quantile(0.99, sum without (pod) (rate(x[1m])))'), ['x']);
});

/** Series name → metric name, for every series Fencer's registries expose. */
async function exportedSeries(): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const [name, { type }] of await exportedMetrics()) for (const s of seriesNames(name, type)) out.set(s, name);
  return out;
}
