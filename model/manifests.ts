// Reads Kubernetes manifests (files or directories of YAML, multi-document, `kind: List`) into a
// cluster snapshot for the offline tools.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import * as yaml from 'js-yaml';
import type { ClusterSnapshot } from './cluster.ts';

export class ManifestError extends Error {}

export interface LoadedManifests { snapshot: ClusterSnapshot; ignored: string[] }

export function loadManifests(paths: string[]): LoadedManifests {
  const snapshot: ClusterSnapshot = { namespaces: [], pods: [], nodes: [], policies: [] };
  const ignored: string[] = [];
  for (const file of paths.flatMap(expand)) {
    let docs: unknown[];
    try {
      docs = yaml.loadAll(readFileSync(file, 'utf8'));
    } catch (e) {
      throw new ManifestError(`${file}: ${(e as Error).message.split('\n')[0]}`);
    }
    for (const doc of docs.flatMap(flattenList)) {
      if (!doc || typeof doc !== 'object') continue;
      const o = doc as { kind?: string; metadata?: { name?: string } };
      if (!o.metadata?.name) throw new ManifestError(`${file}: a ${o.kind ?? 'document'} without metadata.name`);
      switch (o.kind) {
        case 'Namespace': snapshot.namespaces.push(o as never); break;
        case 'Pod': snapshot.pods.push(o as never); break;
        case 'Node': snapshot.nodes.push(o as never); break;
        case 'NetworkPolicy': snapshot.policies.push(o as never); break;
        default: ignored.push(`${file}: ${o.kind}/${o.metadata.name}`);
      }
    }
  }
  return { snapshot, ignored };
}

function expand(path: string): string[] {
  let st;
  try {
    st = statSync(path);
  } catch {
    throw new ManifestError(`${path}: no such file or directory`);
  }
  if (!st.isDirectory()) return [path];
  return readdirSync(path).sort().filter((f) => /\.(ya?ml|json)$/.test(f)).map((f) => join(path, f));
}

function flattenList(doc: unknown): unknown[] {
  const o = doc as { kind?: string; items?: unknown[] } | null;
  return o?.kind === 'List' && Array.isArray(o.items) ? o.items : [doc];
}
