// What one node watches in each design: collections and the query (selectors, bookmarks) of each watch.
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

export function watchSpecs(design: Design, nodes: number): WatchSpec[] {
  const specs: WatchSpec[] = [];
  const crd = (plural: string) => `/apis/${CPS_GROUP}/${CPS_VERSION}/${plural}`;
  for (let node = 0; node < nodes; node++) {
    if (design === 'fencer') {
      specs.push({ node, kind: 'cps', base: crd(CPS_PLURAL), query: { fieldSelector: `metadata.name=${nodeName(node)}` } });
      agentSetSelectors(nodeName(node)).forEach((labelSelector, k) => {
        const kind = ['aset-node', 'aset-bucket'][k] ?? `aset-${k}`;
        specs.push({ node, kind, base: crd(ASET_PLURAL), query: { labelSelector } });
      });
    } else {
      const bookmarks = { allowWatchBookmarks: 'true' };
      specs.push({ node, kind: 'pods', base: '/api/v1/pods', query: bookmarks });
      specs.push({ node, kind: 'namespaces', base: '/api/v1/namespaces', query: bookmarks });
      specs.push({ node, kind: 'networkpolicies', base: '/apis/networking.k8s.io/v1/networkpolicies', query: bookmarks });
    }
  }
  return specs;
}
