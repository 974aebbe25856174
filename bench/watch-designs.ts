// What one node watches in each design, as request paths starting at a resourceVersion.
//   fencer:           its own CompiledPolicySet (field selector on the name, as agent/cps-client.ts)
//                     and the AddressSets of its two consumer labels (crds/consumers.ts), no bookmarks
//                     (client-node's ListWatch asks for none);
//   watch-everything: Azure NPM: every Pod, Namespace and NetworkPolicy, with bookmarks (client-go).
import { ASET_PLURAL } from '../crds/address-set.ts';
import { agentSetSelectors } from '../crds/consumers.ts';
import { CPS_GROUP, CPS_PLURAL, CPS_VERSION } from '../crds/types.ts';
import type { WatchSpec } from './watch-stream.ts';

export type Design = 'fencer' | 'watch-everything';

export function nodeName(i: number): string {
  return `node-${i}`;
}

function watchPath(base: string, resourceVersion: string, extra: Record<string, string> = {}): string {
  const query = new URLSearchParams({ watch: 'true', resourceVersion, ...extra });
  return `${base}?${query}`;
}

export function watchSpecs(design: Design, nodes: number, resourceVersion: string): WatchSpec[] {
  const specs: WatchSpec[] = [];
  const crd = (plural: string) => `/apis/${CPS_GROUP}/${CPS_VERSION}/${plural}`;
  for (let node = 0; node < nodes; node++) {
    if (design === 'fencer') {
      specs.push({ node, kind: 'cps', path: watchPath(crd(CPS_PLURAL), resourceVersion, { fieldSelector: `metadata.name=${nodeName(node)}` }) });
      agentSetSelectors(nodeName(node)).forEach((labelSelector, k) => {
        const kind = ['aset-node', 'aset-bucket'][k] ?? `aset-${k}`;
        specs.push({ node, kind, path: watchPath(crd(ASET_PLURAL), resourceVersion, { labelSelector }) });
      });
    } else {
      const bookmarks = { allowWatchBookmarks: 'true' };
      specs.push({ node, kind: 'pods', path: watchPath('/api/v1/pods', resourceVersion, bookmarks) });
      specs.push({ node, kind: 'namespaces', path: watchPath('/api/v1/namespaces', resourceVersion, bookmarks) });
      specs.push({ node, kind: 'networkpolicies', path: watchPath('/apis/networking.k8s.io/v1/networkpolicies', resourceVersion, bookmarks) });
    }
  }
  return specs;
}
