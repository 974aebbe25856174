// The monitoring contract, with Debian's real Prometheus and promtool:
// - `promtool test rules` runs every alert of the chart's PrometheusRule on synthetic series;
// - a Prometheus on loopback scrapes a running operator (/cluster-metrics) and agent (/node-metrics)
//   with Azure NPM's own scrape jobs, turned into static targets; every metric of the compatibility
//   table is there with its type (/api/v1/metadata); every alert rule evaluates cleanly on the live
//   data and every Grafana dashboard query returns series.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as yaml from 'js-yaml';
import { startAgent, type RunningAgent } from '../../cli/agent.ts';
import type { OperatorHandle } from '../../operator/operator.ts';
import { createNetns } from '../helpers/netns.ts';
import { chartDir, dashboardExprs, exportedMetrics, find, render, type K8sObject, type MetricType } from '../helpers/chart.ts';
import { testCluster } from './env.ts';
import { cpsTestHooks, getCps, testLogger, waitFor, World } from './operator-fixture.ts';
import { freePort } from '../../netns/free-port.ts';

const PROMETHEUS = '/usr/bin/prometheus';
const PROMTOOL = '/usr/bin/promtool';
const missing = !existsSync(PROMETHEUS) || !existsSync(PROMTOOL) ? 'Debian\'s prometheus package is not installed (scripts/setup.sh installs it as root)' : false;

/** Azure NPM's scrape jobs, as its repository ships them (npm/metrics/prometheus-server-scrape-config.yaml and
 *  prometheus-server-alternative-scrape-config.yaml), which users point at Fencer unchanged. */
const NPM_SCRAPE_JOBS = `
- job_name: "azure-npm-node-metrics"
  metrics_path: /node-metrics
  kubernetes_sd_configs:
  - role: node
  relabel_configs:
  - source_labels: [__address__]
    action: replace
    regex: ([^:]+)(?::\\d+)?
    replacement: "$1:10091"
    target_label: __address__
- job_name: "azure-npm-node-metrics-from-pod-config"
  metrics_path: /node-metrics
  kubernetes_sd_configs:
  - role: pod
  relabel_configs:
  - source_labels: [__meta_kubernetes_namespace]
    regex: kube-system
    action: keep
  - source_labels: [__meta_kubernetes_pod_annotationpresent_azure_npm_scrapeable]
    action: keep
  - source_labels: [__address__]
    action: replace
    regex: ([^:]+)(?::\\d+)?
    replacement: "$1:10091"
    target_label: __address__
- job_name: "azure-npm-cluster-metrics"
  metrics_path: /cluster-metrics
  kubernetes_sd_configs:
  - role: service
  relabel_configs:
  - source_labels: [__meta_kubernetes_namespace]
    regex: kube-system
    action: keep
  - source_labels: [__meta_kubernetes_service_name]
    regex: npm-metrics-cluster-service
    action: keep
  metric_relabel_configs:
  - source_labels: [__name__]
    regex: npm_ipset_counts
    action: drop
`;

/** The compatibility table (../shared/reference/azure-npm-compat.md): name, type, and the jobs serving it. */
const COMPAT: Array<[string, MetricType, Array<'node' | 'cluster'>]> = [
  ['npm_num_policies', 'gauge', ['node', 'cluster']],
  ['npm_num_iptables_rules', 'gauge', ['node', 'cluster']],
  ['npm_num_ipsets', 'gauge', ['node', 'cluster']],
  ['npm_num_ipset_entries', 'gauge', ['node', 'cluster']],
  ['npm_ipset_counts', 'gauge', ['node']],
  ['npm_add_iptables_rule_exec_time', 'summary', ['node']],
  ['npm_add_ipset_exec_time', 'summary', ['node']],
  ['npm_add_policy_exec_time', 'summary', ['node', 'cluster']],
  ['npm_controller_policy_exec_time', 'summary', ['cluster']],
  ['npm_controller_namespace_exec_time', 'summary', ['cluster']],
  ['npm_controller_pod_exec_time', 'summary', ['cluster']],
];

interface Job { job_name: string; metrics_path: string; kubernetes_sd_configs?: Array<{ role: string }>; relabel_configs?: unknown[]; metric_relabel_configs?: unknown[] }

/**
 * NPM's jobs with their Kubernetes discovery replaced by the loopback addresses it would find: the
 * node job → the agent (hostNetwork, :10091); the pod job → the annotated pods the chart renders
 * (agents only, see values.yaml azureNpm.annotateOperator); the service job → the operator behind
 * npm-metrics-cluster-service (9000 → 10091). The relabelling only rewrites discovered addresses.
 */
function staticJobs(agent: string, operator: string, annotated: string[]): Job[] {
  const targets: Record<string, string[]> = { node: [agent], pod: annotated, service: [operator] };
  return (yaml.load(NPM_SCRAPE_JOBS) as Job[]).map(({ kubernetes_sd_configs: sd, relabel_configs: _discovery, ...job }) => ({
    ...job, static_configs: [{ targets: targets[sd![0].role] }],
  }));
}


function renderedRules(): { groups: Array<{ name: string; rules: Array<{ alert: string; expr: string; for?: string; labels: Record<string, string>; annotations: Record<string, string> }> }> } {
  const rule = find(render({ set: { 'prometheusRule.enabled': true } }), 'PrometheusRule') as K8sObject & { spec: ReturnType<typeof renderedRules> };
  return rule.spec;
}

/** An alert's annotations as Prometheus expands them for one alert (the few template forms the chart uses). */
function expand(annotations: Record<string, string>, labels: Record<string, string>, value: string): Record<string, string> {
  return Object.fromEntries(Object.entries(annotations).map(([k, v]) => [k, v
    .replace(/\{\{ \$labels\.(\w+) \}\}/g, (_, l: string) => labels[l] ?? '')
    .replace(/\{\{ \$value \}\}/g, value)
    .replace(/\{\{ printf "%\.0f" \$value \}\}/g, String(Math.round(Number(value))))]));
}

test('promtool: the rules file is valid and every alert fires exactly when it should', { skip: missing }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'fencer-rules-'));
  try {
    const spec = renderedRules();
    writeFileSync(join(dir, 'rules.yaml'), yaml.dump(spec));
    const checked = spawnSync(PROMTOOL, ['check', 'rules', join(dir, 'rules.yaml')], { encoding: 'utf8' });
    assert.equal(checked.status, 0, checked.stdout + checked.stderr);
    assert.match(checked.stdout, /SUCCESS: 5 rules found/);

    const rules = new Map(spec.groups.flatMap((g) => g.rules).map((r) => [r.alert, r]));
    const alert = (name: string, labels: Record<string, string>, value: string) => ({
      exp_labels: { ...labels, ...rules.get(name)!.labels },
      exp_annotations: expand(rules.get(name)!.annotations, labels, value),
    });
    const at = (eval_time: string, alertname: string, exp_alerts: unknown[]) => ({ eval_time, alertname, exp_alerts });
    const tests = {
      rule_files: ['rules.yaml'],
      evaluation_interval: '30s',
      tests: [
        {
          // A counter that existed, then counted a failure; and a series born at its first failure.
          interval: '1m',
          input_series: [
            { series: 'npm_add_policy_exec_time_count{had_error="true",instance="n1"}', values: '0x10 1x20' },
            { series: 'npm_add_policy_exec_time_count{had_error="true",instance="n2"}', values: '_x20 1x20' },
            { series: 'npm_add_policy_exec_time_count{had_error="false",instance="n3"}', values: '0+5x40' },
          ],
          alert_rule_test: [
            at('9m', 'NpmPolicyAddFailed', []),
            at('12m', 'NpmPolicyAddFailed', [alert('NpmPolicyAddFailed', { had_error: 'true', instance: 'n1' }, '')]),
            at('22m', 'NpmPolicyAddFailed', [alert('NpmPolicyAddFailed', { had_error: 'true', instance: 'n2' }, '')]),
            at('30m', 'NpmPolicyAddFailed', []),
          ],
        },
        {
          interval: '1m',
          input_series: [
            { series: 'npm_controller_pod_exec_time{operation="create",quantile="0.5",had_error="false",instance="op"}', values: '50x5 150x5' },
            { series: 'npm_controller_pod_exec_time{operation="update",quantile="0.5",had_error="false",instance="op"}', values: '500x10' },
            { series: 'npm_controller_pod_exec_time{operation="create",quantile="0.9",had_error="false",instance="op"}', values: '500x10' },
          ],
          alert_rule_test: [
            at('3m', 'NpmPodCreateSlow', []),
            at('7m', 'NpmPodCreateSlow', [alert('NpmPodCreateSlow', { operation: 'create', quantile: '0.5', had_error: 'false', instance: 'op' }, '150')]),
          ],
        },
        {
          // Two operator replicas report the same count: one alert, after a minute behind.
          interval: '30s',
          input_series: [
            { series: 'fencer_cps_nodes{state="behind",instance="op-a"}', values: '0x4 2x10 0x4' },
            { series: 'fencer_cps_nodes{state="behind",instance="op-b"}', values: '0x4 2x10 0x4' },
            { series: 'fencer_cps_nodes{state="in_sync",instance="op-a"}', values: '5x18' },
          ],
          alert_rule_test: [
            at('2m30s', 'FencerNodeBehind', []),
            at('3m30s', 'FencerNodeBehind', [alert('FencerNodeBehind', {}, '2')]),
            at('9m', 'FencerNodeBehind', []),
          ],
        },
        {
          interval: '1m',
          input_series: [
            { series: 'fencer_agent_drift_repairs_total{instance="n1"}', values: '0x10 1x30' },
            { series: 'fencer_agent_drift_repairs_total{instance="n2"}', values: '0x40' },
          ],
          alert_rule_test: [
            at('9m', 'FencerDriftRepaired', []),
            at('15m', 'FencerDriftRepaired', [alert('FencerDriftRepaired', { instance: 'n1' }, '')]),
            at('25m', 'FencerDriftRepaired', []),
          ],
        },
        {
          interval: '1m',
          input_series: [
            { series: 'fencer_agent_applies_total{result="failed",instance="n1"}', values: '_x10 1x30' },
            { series: 'fencer_agent_applies_total{result="rules",instance="n1"}', values: '0+1x40' },
          ],
          alert_rule_test: [
            at('9m', 'FencerApplyFailed', []),
            at('12m', 'FencerApplyFailed', [alert('FencerApplyFailed', { result: 'failed', instance: 'n1' }, '')]),
            at('20m', 'FencerApplyFailed', []),
          ],
        },
      ],
    };
    writeFileSync(join(dir, 'tests.yaml'), yaml.dump(tests));
    const r = spawnSync(PROMTOOL, ['test', 'rules', join(dir, 'tests.yaml')], { encoding: 'utf8', cwd: dir });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /SUCCESS/);
    // Every alert has a test.
    for (const name of rules.keys()) assert.ok(tests.tests.some((t) => t.alert_rule_test.some((a) => a.alertname === name)), `${name} is untested`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// ---------------------------------------------------------------------------------------------
// A real Prometheus scraping a running operator and agent

const hooks = cpsTestHooks();
let prometheus: ChildProcess | undefined;
let api = '';
let work = '';
let operator: OperatorHandle;
let agent: RunningAgent;
let stopWorld: Array<() => Promise<void> | void> = [];

async function query(promql: string): Promise<Array<{ metric: Record<string, string>; value: [number, string] }>> {
  const res = await fetch(`${api}/api/v1/query?query=${encodeURIComponent(promql)}`);
  const body = (await res.json()) as { status: string; error?: string; data: { result: Array<{ metric: Record<string, string>; value: [number, string] }> } };
  if (body.status !== 'success') throw new Error(`${promql}: ${body.error}`);
  return body.data.result;
}

before(async () => {
  if (missing) return;
  const cleanups: Array<() => Promise<void> | void> = [];
  const t = { after: (fn: () => Promise<void> | void) => void cleanups.push(fn) };
  stopWorld = cleanups;
  const w = new World(t, 'prom');
  const nodes = [await w.node('n1'), await w.node('n2')];
  operator = await w.operator();
  // Objects made while the operator watches: create events for every NPM controller summary.
  const apps = await w.namespace('apps', { team: 'a' });
  await w.pod({ namespace: apps, name: 'web', node: nodes[0], labels: { app: 'web' }, ports: [{ name: 'http', containerPort: 8080 }] });
  await w.pod({ namespace: apps, name: 'client', node: nodes[1], labels: { role: 'client' } });
  await w.policy(apps, { metadata: { name: 'web' }, spec: { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ _from: [{ podSelector: { matchLabels: { role: 'client' } } }], ports: [{ port: 'http' }] }] } });
  await w.policy(apps, { metadata: { name: 'v6' }, spec: { podSelector: {}, egress: [{ to: [{ ipBlock: { cidr: 'fd00::/8' } }] }], policyTypes: ['Egress'] } });

  const netns = createNetns('fencer-pr');
  agent = await startAgent({
    nodeName: nodes[0], kubeconfig: testCluster().kubeconfigPath, netns: netns.name, metricsPort: 0, metricsHost: '127.0.0.1',
    driftSeconds: 1, hookPosition: 'first', iptablesMode: 'auto', log: testLogger(),
  });
  cleanups.push(() => agent.stop());
  await waitFor('the agent to enforce its CompiledPolicySet', async () => {
    const cps = await getCps(hooks.api.custom, nodes[0]);
    return cps?.status?.observedGeneration === cps?.metadata.generation && cps?.status?.appliedHash === cps?.spec.contentHash;
  }, 20_000, 100);

  work = mkdtempSync(join(tmpdir(), 'fencer-prom-'));
  const agentTarget = `127.0.0.1:${agent.metricsPort}`;
  const annotated = render().filter((o) => (o as unknown as { spec?: { template?: { metadata: { annotations?: Record<string, string> } } } }).spec?.template?.metadata.annotations?.['azure.npm/scrapeable'] === '');
  assert.deepEqual(annotated.map((o) => o.metadata.name), ['fencer-agent'], 'the chart annotates the agents\' pods');
  const config = {
    global: { scrape_interval: '1s', evaluation_interval: '1s' },
    rule_files: ['rules.yaml'],
    scrape_configs: staticJobs(agentTarget, `127.0.0.1:${operator.httpPort}`, [agentTarget]),
  };
  writeFileSync(join(work, 'rules.yaml'), yaml.dump(renderedRules()));
  writeFileSync(join(work, 'prometheus.yml'), yaml.dump(config));
  const port = await freePort();
  api = `http://127.0.0.1:${port}`;
  prometheus = spawn(PROMETHEUS, [
    `--config.file=${join(work, 'prometheus.yml')}`, `--storage.tsdb.path=${join(work, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn',
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  prometheus.stderr!.setEncoding('utf8').on('data', (c: string) => (log = (log + c).slice(-4000)));
  await waitFor(`Prometheus to be ready (${log})`, async () => (await fetch(`${api}/-/ready`)).ok, 30_000, 200);
  await waitFor('every target up', async () => {
    const res = (await (await fetch(`${api}/api/v1/targets`)).json()) as { data: { activeTargets: Array<{ health: string }> } };
    return res.data.activeTargets.length === 3 && res.data.activeTargets.every((t) => t.health === 'up');
  }, 20_000, 200);
  // A few scrapes, so rate() and increase() have two samples to work with.
  await new Promise((r) => setTimeout(r, 4000));
});

after(async () => {
  if (prometheus && prometheus.exitCode === null) {
    const exited = new Promise((r) => prometheus!.once('exit', r));
    prometheus.kill('SIGTERM');
    await exited;
  }
  for (const fn of stopWorld.reverse()) await fn();
  if (work) rmSync(work, { recursive: true, force: true });
});

test('every metric of the compatibility table is scraped from its NPM job, with its type', { skip: missing }, async () => {
  const res = (await (await fetch(`${api}/api/v1/metadata`)).json()) as { data: Record<string, Array<{ type: string }>> };
  const jobs = { node: ['azure-npm-node-metrics', 'azure-npm-node-metrics-from-pod-config'], cluster: ['azure-npm-cluster-metrics'] };
  const problems: string[] = [];
  for (const [name, type, where] of COMPAT) {
    const types = new Set((res.data[name] ?? []).map((m) => m.type));
    if (types.size !== 1 || !types.has(type)) problems.push(`${name}: metadata says ${[...types].join(',') || 'nothing'}, not ${type}`);
    for (const kind of where) {
      for (const job of jobs[kind]) {
        const series = type === 'summary' ? [`${name}_count`, `${name}_sum`, `${name}{quantile="0.5"}`] : [name];
        for (const s of series) {
          const selector = s.includes('{') ? s.replace('}', `,job="${job}"}`) : `${s}{job="${job}"}`;
          if ((await query(selector)).length === 0) problems.push(`${selector}: no series`);
        }
      }
    }
  }
  assert.deepEqual(problems, []);
  // NPM's advanced metric is dropped on the cluster job, as its scrape config says, and kept on the node job.
  assert.equal((await query('npm_ipset_counts{job="azure-npm-cluster-metrics"}')).length, 0);
  // The operator's totals are true cluster totals: the agents' reports summed (one agent reports here).
  const [clusterRules] = await query('npm_num_iptables_rules{job="azure-npm-cluster-metrics"}');
  const [nodeRules] = await query('npm_num_iptables_rules{job="azure-npm-node-metrics"}');
  assert.equal(clusterRules.value[1], nodeRules.value[1]);
  assert.ok(Number(nodeRules.value[1]) > 0);
});

test('every metric Fencer registers is scraped with the type it registers (Windows-only ones aside)', { skip: missing }, async () => {
  const res = (await (await fetch(`${api}/api/v1/metadata`)).json()) as { data: Record<string, Array<{ type: string }>> };
  const problems: string[] = [];
  for (const [name, { type, components }] of await exportedMetrics()) {
    if (components.every((c) => c === 'agent-windows')) continue;
    const got = res.data[name]?.map((m) => m.type) ?? [];
    if (!got.includes(type)) problems.push(`${name}: ${got.join(',') || 'absent'} (registered ${type})`);
  }
  assert.deepEqual(problems, []);
});

test('every alert rule evaluates cleanly on the live series', { skip: missing }, async () => {
  await waitFor('every rule evaluated', async () => {
    const res = (await (await fetch(`${api}/api/v1/rules`)).json()) as { data: { groups: Array<{ rules: Array<{ lastEvaluation: string }> }> } };
    return res.data.groups.flatMap((g) => g.rules).every((r) => !r.lastEvaluation.startsWith('0001'));
  }, 10_000, 200);
  const res = (await (await fetch(`${api}/api/v1/rules`)).json()) as { data: { groups: Array<{ rules: Array<{ name: string; health: string; lastError?: string; state: string }> }> } };
  const rules = res.data.groups.flatMap((g) => g.rules);
  assert.equal(rules.length, 5);
  for (const r of rules) assert.equal(r.health, 'ok', `${r.name}: ${r.lastError}`);
  // The IPv6 ipBlock cannot be honoured: the operator counts it as a failed policy add, so NPM's alert fires.
  assert.equal(rules.find((r) => r.name === 'NpmPolicyAddFailed')?.state, 'firing');
});

test('every Grafana dashboard query returns series from the scraped operator and agent', { skip: missing }, async () => {
  const dashboard = JSON.parse(readFileSync(join(chartDir, 'dashboards/fencer.json'), 'utf8')) as { panels: unknown[] };
  const empty: string[] = [];
  for (const { panel, expr } of dashboardExprs(dashboard)) {
    if ((await query(expr)).length === 0) empty.push(`${panel}: ${expr}`);
  }
  assert.deepEqual(empty, []);
});
