// What etcd and kube-apiserver say about themselves (/metrics), read before and after a phase.
import type { ApiClient } from './h2.ts';
import { byLabel, parseMetrics, total, type Sample } from './prom-text.ts';

export interface ServerSnapshot {
  at: number;
  etcd: Sample[];
  apiserver: Sample[];
}

export async function snapshot(etcdUrl: string, api: ApiClient): Promise<ServerSnapshot> {
  const [etcd, apiserver] = await Promise.all([
    fetch(`${etcdUrl}/metrics`).then((r) => r.text()),
    api.ok('GET', '/metrics').then((r) => r.body),
  ]);
  return { at: performance.now(), etcd: parseMetrics(etcd), apiserver: parseMetrics(apiserver) };
}

export interface ServerDelta {
  seconds: number;
  etcd: { walBytes: number; dbGrowthBytes: number; puts: number; deletes: number; cpuSeconds: number };
  apiserver: {
    cpuSeconds: number;
    /** Accepted writes (POST, PUT, PATCH, DELETE, APPLY with a 2xx code) by "resource[/subresource] VERB". */
    writes: Record<string, number>;
    /** Watch events sent to every watcher (this bench's and the operator's), and their bytes, by resource. */
    watchEvents: Record<string, number>;
    watchBytes: Record<string, number>;
    /** Watchers the apiserver closed because they did not keep up, by resource. */
    terminatedWatchers: Record<string, number>;
  };
}

const WRITE_VERBS = ['POST', 'PUT', 'PATCH', 'DELETE', 'APPLY'];

function diff(after: Record<string, number>, before: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(after)) if (v - (before[k] ?? 0) !== 0) out[k] = v - (before[k] ?? 0);
  return out;
}

function writes(samples: Sample[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of samples) {
    if (s.name !== 'apiserver_request_total' || !WRITE_VERBS.includes(s.labels.verb) || !/^2/.test(s.labels.code)) continue;
    const key = `${s.labels.resource}${s.labels.subresource ? `/${s.labels.subresource}` : ''} ${s.labels.verb}`;
    out[key] = (out[key] ?? 0) + s.value;
  }
  return out;
}

/** The watch metrics' per-kind label: `resource` on newer apiservers, `kind` on older ones. */
function watchBy(samples: Sample[], name: string): Record<string, number> {
  const label = samples.some((s) => s.name === name && 'resource' in s.labels) ? 'resource' : 'kind';
  return byLabel(samples, name, label);
}

export function delta(before: ServerSnapshot, after: ServerSnapshot): ServerDelta {
  const e = (name: string) => total(after.etcd, name) - total(before.etcd, name);
  const a = (name: string) => total(after.apiserver, name) - total(before.apiserver, name);
  const watch = (name: string) => diff(watchBy(after.apiserver, name), watchBy(before.apiserver, name));
  return {
    seconds: (after.at - before.at) / 1000,
    etcd: {
      walBytes: e('etcd_disk_wal_write_bytes_total'),
      dbGrowthBytes: e('etcd_mvcc_db_total_size_in_bytes'),
      puts: e('etcd_mvcc_put_total'),
      deletes: e('etcd_mvcc_delete_total'),
      cpuSeconds: e('process_cpu_seconds_total'),
    },
    apiserver: {
      cpuSeconds: a('process_cpu_seconds_total'),
      writes: diff(writes(after.apiserver), writes(before.apiserver)),
      watchEvents: watch('apiserver_watch_events_total'),
      watchBytes: watch('apiserver_watch_events_sizes_sum'),
      terminatedWatchers: diff(byLabel(after.apiserver, 'apiserver_terminated_watchers_total', 'resource'), byLabel(before.apiserver, 'apiserver_terminated_watchers_total', 'resource')),
    },
  };
}

/** Sum of the write counts whose key starts with one of these "resource[/subresource] " prefixes. */
export function writesOf(writes: Record<string, number>, ...keys: string[]): number {
  return Object.entries(writes).filter(([k]) => keys.some((p) => k.startsWith(`${p} `))).reduce((s, [, v]) => s + v, 0);
}
