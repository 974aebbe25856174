// How the consumers of a shared set are named on its shards, measured on a real apiserver and etcd:
// one label per node, one label per node bucket, or per node up to 16 consumers and by bucket above.
// Each alternative writes the same 128-member shard (used by N nodes) ten times with one member
// changed; etcd's WAL bytes per write and the object's size on the wire (what every watcher of it
// receives) are the cost.
import { CustomObjectsApi } from '@kubernetes/client-node';
import { ASET_PLURAL, type AddressSet } from '../crds/address-set.ts';
import { BUCKETS, bucketLabel, bucketOf, consumerLabels, nodeLabel } from '../crds/consumers.ts';
import { CPS_GROUP, CPS_VERSION } from '../crds/types.ts';
import { startControlPlane } from '../localcluster/control-plane.ts';
import { MANAGED_BY_LABEL } from '../operator/cps-object.ts';

export interface LabelCostRow { scheme: string; consumers: number; labels: number; objectBytes: number; etcdBytesPerWrite: number }

const SCHEMES: Record<string, (nodes: string[]) => Record<string, string>> = {
  'one label per node': (nodes) => Object.fromEntries(nodes.map((n) => [nodeLabel(n), ''])),
  [`one label per bucket (${BUCKETS})`]: (nodes) => Object.fromEntries([...new Set(nodes.map(bucketOf))].map((b) => [bucketLabel(b), ''])),
  'per node up to 16, then per bucket (chosen)': consumerLabels,
};

async function walBytes(etcdUrl: string): Promise<number> {
  const text = await (await fetch(`${etcdUrl}/metrics`)).text();
  return Number(/^etcd_disk_wal_write_bytes_total (\S+)/m.exec(text)?.[1] ?? NaN);
}

export async function benchLabelCost(consumerCounts = [1, 16, 100, 1000]): Promise<LabelCostRow[]> {
  const cp = await startControlPlane();
  const custom = cp.kubeConfig().makeApiClient(CustomObjectsApi);
  const api = { group: CPS_GROUP, version: CPS_VERSION, plural: ASET_PLURAL };
  const rows: LabelCostRow[] = [];
  try {
    await cp.installCrds();
    let k = 0;
    for (const [scheme, labelsFor] of Object.entries(SCHEMES)) for (const count of consumerCounts) {
      const nodes = Array.from({ length: count }, (_, i) => `aks-nodepool1-12345678-vmss${String(i).padStart(6, '0')}`);
      const members = (v: number) => Array.from({ length: 128 }, (_, i) => `10.${(i + v) >> 8 & 255}.${k & 255}.${(i + v) & 255}`);
      const name = `p-${(k++).toString(16).padStart(16, '0')}-0-0`;
      const body = (v: number): AddressSet => ({
        apiVersion: 'fencer.dev/v1alpha1', kind: 'AddressSet',
        metadata: { name, labels: { [MANAGED_BY_LABEL]: 'fencer', ...labelsFor(nodes) } },
        spec: { set: name.slice(0, 18), kind: 'ip', origin: 'pods with app=web in namespaces with team=a', epoch: 0, shard: 0, shards: 1, size: 128, nodes: count, members: members(v) },
      });
      let current = (await custom.createClusterCustomObject({ ...api, body: body(0) })) as AddressSet;
      const before = await walBytes(cp.etcdUrl);
      for (let v = 1; v <= 10; v++) {
        current = (await custom.replaceClusterCustomObject({ ...api, name, body: { ...body(v), metadata: { ...body(v).metadata, resourceVersion: current.metadata.resourceVersion } } })) as AddressSet;
      }
      const etcdBytesPerWrite = ((await walBytes(cp.etcdUrl)) - before) / 10;
      rows.push({ scheme, consumers: count, labels: Object.keys(body(0).metadata.labels!).length, objectBytes: Buffer.byteLength(JSON.stringify(current)), etcdBytesPerWrite });
      await custom.deleteClusterCustomObject({ ...api, name });
    }
  } finally {
    await cp.stop();
  }
  return rows;
}

export function labelCostReport(rows: LabelCostRow[]): string {
  return [
    '| scheme | nodes using the set | labels | object bytes (as watchers receive it) | etcd WAL bytes per write |',
    '|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.scheme} | ${r.consumers} | ${r.labels} | ${r.objectBytes} | ${r.etcdBytesPerWrite.toFixed(0)} |`),
  ].join('\n');
}
