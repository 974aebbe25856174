// etcd's v3 HTTP gateway, for outage tests: move the revision on and compact it, so every watch that
// resumes after the outage does so from a compacted resourceVersion (410 Gone) and must relist.

/** Moves the revision on (keys outside /registry) and compacts up to it; the compacted revision. */
export async function compactEtcd(etcdUrl: string): Promise<number> {
  const post = async (path: string, body: unknown) => {
    const res = await fetch(`${etcdUrl}${path}`, { method: 'POST', body: JSON.stringify(body) });
    if (!res.ok) throw new Error(`etcd ${path}: ${res.status} ${await res.text()}`);
    return (await res.json()) as { header?: { revision?: string } };
  };
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  let revision = 0;
  for (let i = 0; i < 20; i++) revision = Number((await post('/v3/kv/put', { key: b64(`/fencer-test/outage-${i}`), value: b64(String(i)) })).header?.revision);
  await post('/v3/kv/compaction', { revision: String(revision), physical: true });
  return revision;
}
