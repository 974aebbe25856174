// The watch-cost section of bench/out/REPORT.md.
import type { WatchCostResult } from './watch-cost.ts';
import type { WatchCostRow } from './watch-cost-row.ts';

const kib = (b: number) => (b >= 10 * 1024 ? `${(b / 1024).toFixed(0)} KiB` : b >= 1024 ? `${(b / 1024).toFixed(1)} KiB` : `${b.toFixed(0)} B`);
const n2 = (x: number) => (x === 0 ? '0' : x < 0.01 ? x.toExponential(1) : x.toFixed(2));
const sum = (r: Record<string, number>) => Object.values(r).reduce((a, b) => a + b, 0);

function health(r: WatchCostRow): string {
  const parts: string[] = [];
  const w = r.watchers;
  const terminated = Object.entries(w.terminatedByApiserver).map(([k, v]) => `${v} ${k}`).join(', ');
  if (w.notOpened) parts.push(`${w.notOpened} of ${w.streams} watches not opened`);
  if (terminated) parts.push(`apiserver closed slow watchers: ${terminated}`);
  if (sum(w.ends)) parts.push(`${sum(w.ends)} watch ends (${Object.entries(w.ends).map(([k, v]) => `${v}× ${k}`).join(', ')}), ${w.resumes} resumed, ${w.relists} relists (${kib(r.relistBytesPerEvent)} / event)${w.failed ? `, ${w.failed} lost for good` : ''}`);
  if (r.lag.maxBacklogEvents !== undefined) parts.push(`slowest watcher ≤ ${r.lag.maxBacklogEvents} events behind`);
  if (r.lag.undeliveredEvents) parts.push(`${r.lag.undeliveredEvents} events not delivered when the ${r.lag.drainSeconds.toFixed(0)} s drain ended`);
  parts.push(`drained in ${r.lag.drainSeconds.toFixed(1)} s`);
  if (r.benchLoopDelayMs.max > 100) parts.push(`bench main thread late by up to ${r.benchLoopDelayMs.max.toFixed(0)} ms`);
  if (r.benchLoopDelayMs.watchMax > 100) parts.push(`watch thread late by up to ${r.benchLoopDelayMs.watchMax.toFixed(0)} ms`);
  if (r.churn.failedWrites) parts.push(`${r.churn.failedWrites} writes failed`);
  if (r.churn.missedTicks) parts.push(`${r.churn.missedTicks} ticks missed`);
  return parts.join('; ');
}

function mainRow(r: WatchCostRow): string {
  const fencer = r.design === 'fencer';
  return `| ${r.nodes} | ${r.design} | ${r.eventsPerSecond} (${r.achievedPerSecond.toFixed(1)}) | ${r.events} | ${kib(r.etcdBytesPerEvent)} | ${kib(r.sentBytesPerEvent)} | ${kib(r.sentBytesPerNodePerEvent.median)} / ${kib(r.sentBytesPerNodePerEvent.max)} | ${fencer ? n2(r.nodeObjectWritesPerEvent) : '–'} | ${fencer ? n2(r.offNodeWritesPerEvent) : '–'} | ${fencer ? n2(r.addressSetWritesPerEvent) : '–'} | ${r.cpuCores.apiserver.toFixed(2)} / ${r.cpuCores.etcd.toFixed(2)} / ${r.cpuCores.bench.toFixed(2)} / ${r.cpuCores.other.toFixed(2)} | ${health(r)} |`;
}

function detailRow(r: WatchCostRow): string {
  const op = r.operatorSpecBytesPerEvent;
  const byWatch = Object.entries(r.sentBytesByWatch).filter(([, v]) => v > 0).map(([k, v]) => `${k} ${kib(v)}${r.bytesPerWatchEvent[k] ? ` (${kib(r.bytesPerWatchEvent[k])} an event)` : ''}`).join(', ');
  return `| ${r.nodes} | ${r.design} | ${r.eventsPerSecond} | ${kib(r.etcdDbGrowthPerEvent)} | ${n2(r.etcdPutsPerEvent)} | ${r.operatorEtcdBytesPerEvent === undefined ? '–' : kib(r.operatorEtcdBytesPerEvent)} | ${op ? `${kib(op.cps)} + ${kib(op.addressSets)}` : '–'} | ${byWatch} | ${kib(r.wireBytesPerEvent)} | ${kib(sum(r.apiserverWatchBytesPerEvent))} |`;
}

export function watchCostReport(result: WatchCostResult): string {
  const rows = result.runs.flatMap((r) => r.rows);
  const o = result.options;
  const setup = result.runs.map((r) => {
    const total = Object.values(r.populateSeconds).reduce((a, b) => a + b, 0);
    const head = `${r.nodes} nodes: ${r.pods} pods (${kib(r.podBytes)} of JSON each when Ready), ${r.policies} policies, ${r.namespaces} namespaces created in ${total.toFixed(0)} s (pods ${(r.populateSeconds.pods ?? 0).toFixed(0)} s, ${((r.pods * 2) / (r.populateSeconds.pods || 1)).toFixed(0)} writes/s)`;
    const op = r.operatorStartSeconds === undefined ? '' : `; operator start → every CPS written ${r.operatorStartSeconds.toFixed(1)} s`;
    return `- ${head}${op}; the whole size took ${(r.wallSeconds / 60).toFixed(1)} min${r.error ? `; **failed:** ${r.error.split('\n')[0]}` : ''}`;
  });
  return [
    `Real kube-apiserver + etcd, the operator in-process (commit ${result.commit}), N simulated nodes each holding its own HTTP/2 connection${o.nodesPerConnection > 1 ? ` (${o.nodesPerConnection} nodes per connection)` : ''} with the watches of its design: **fencer** = its CompiledPolicySet (field selector) and AddressSets (its two consumer-label selectors); **watch-everything** = Azure NPM: every Pod, Namespace and NetworkPolicy. No agents run (so no status patches), and the operator is not running during the watch-everything phases. Each rate runs ${o.seconds} s of churn on ¾ of the nodes (every 4th node is quiet); an event is one accepted pod write. Mix per 12 writes: a pod created (controller POST, scheduler binding, kubelet ContainerCreating, Running, Ready), deleted (graceful DELETE, kubelet terminated, kubelet final DELETE), 3 readiness flips, 1 relabel. Bytes: the JSON bodies the watchers received (no compression asked for, as agents ask for none); "wire" adds HTTP/2 and TLS framing.`,
    '',
    ...setup,
    '',
    '| nodes | design | events/s asked (achieved) | events | etcd WAL / event | sent to all nodes / event | per node median / max | CPS writes / event | … on other nodes | AddressSet writes / event | CPU cores apiserver / etcd / bench / other | watchers and lag |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|',
    ...rows.map(mainRow),
    '',
    '"… on other nodes": CompiledPolicySet writes of nodes other than the pod\'s, per event (the quiet nodes\' CPS events scaled to N−1 nodes). CPU: the bench is this process (watchers on their own thread, churn client and, in fencer rows, the operator, on the main thread); "other" is whatever else the machine ran meanwhile (from /proc/stat): a busy machine makes watchers fall behind and the apiserver close them, so the lag column is only meaningful when "other" is near 0; the bytes and writes per event are not affected.',
    '',
    '| nodes | design | events/s | etcd db growth / event | etcd puts / event | operator share of etcd WAL / event | operator spec bytes / event (CPS + AddressSet) | sent by watch (size of one event) | wire / event | apiserver watch bytes / event (every watcher) |',
    '|---|---|---|---|---|---|---|---|---|---|',
    ...rows.map(detailRow),
    '',
    'The apiserver\'s own watch-byte count includes the operator\'s informers and one protobuf pod watch of the apiserver itself (present before anything else runs).',
  ].join('\n');
}
